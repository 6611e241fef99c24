"""``python -m devstack ...``; the app's CLI mounts the same typer ``cli`` as ``polyshop stack``."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from devstack import _api
from devstack._install import InstallError
from devstack._progress import console
from devstack._services import SERVICES
from devstack._supervisor import StackError

THEN = "--then"  # run-tests: the args after it are another pytest run

cli = typer.Typer(
    name="stack",
    help="Native dev stack (.devstack/): Postgres, Redis, OpenSearch, Elasticsearch, MinIO,"
    " RabbitMQ, Mailpit.",
    no_args_is_help=True,
    add_completion=False,
)

ServiceArg = Annotated[
    str, typer.Argument(help=f"one of {', '.join(SERVICES)} (or an app program)")
]


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


@cli.command()
def up(
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
) -> None:
    """Install what is missing, start every service, wait until all are ready."""
    started = time.monotonic()
    try:
        env = _api.up(progress=progress)
    except (StackError, InstallError) as exc:
        _fail(exc)
        return
    elapsed = time.monotonic() - started
    console.print(f"[green]stack up[/green] in {elapsed:.1f}s (env: .devstack/services.env)")
    for key, value in env.items():
        typer.echo(f"{key}={value}")


@cli.command("run-app")
def run_app(
    replicas: Annotated[
        int | None,
        typer.Option(min=1, help="API processes behind nginx [env POLYSHOP_API_REPLICAS; 2]"),
    ] = None,
) -> None:
    """``up`` plus N API replicas behind nginx (http://127.0.0.1:8000) and the worker."""
    try:
        _api.run_app(replicas=replicas)
    except (StackError, InstallError, ValueError) as exc:
        _fail(exc)
    status()
    console.print(f"API (nginx): {_api.api_url()}")


@cli.command("stop-app")
def stop_app() -> None:
    """Stop the app's API and worker started by `run-app`; services keep running."""
    try:
        _api.stop_app()
    except (StackError, InstallError) as exc:
        _fail(exc)


@cli.command()
def down() -> None:
    """Stop every program and supervisord. Data is kept in .devstack/data."""
    try:
        _api.down()
    except StackError as exc:
        _fail(exc)


@cli.command()
def status() -> None:
    """One line per service: state, pid, url."""
    for s in _api.status():
        typer.echo(f"{s.name:<13} {s.state:<9} pid={s.pid or '-':<8} {s.url}")


@cli.command()
def start(name: ServiceArg) -> None:
    """Start one service and wait until it is ready."""
    try:
        _api.start_service(name)
    except StackError as exc:
        _fail(exc)


@cli.command()
def stop(name: ServiceArg) -> None:
    """Stop one service gracefully."""
    try:
        _api.stop_service(name)
    except StackError as exc:
        _fail(exc)


@cli.command()
def kill(name: ServiceArg) -> None:
    """SIGKILL one service's process (simulated crash); it stays down until `start`."""
    try:
        _api.kill_service(name)
    except StackError as exc:
        _fail(exc)


@cli.command()
def logs(
    name: ServiceArg,
    lines: Annotated[int, typer.Option("-n", "--lines")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """Show the end of a service's log (supervisord, install-* logs work too)."""
    path = _api.log_path(name)
    if not path.exists():
        _fail(StackError(f"no log at {path}"))
    args = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    os.execvp("tail", args)


@cli.command(
    "run-tests",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run_tests(ctx: typer.Context) -> None:
    """Bring the stack up, run pytest with the given args, stop what this started.

    `--then` starts the args of another pytest run on the same stack, after the first:
    `run-tests -- -n 3 --ignore=F --then -p no:xdist F`. The exit code is the first
    failed run's."""
    raise typer.Exit(_api.run_tests(split_runs(list(ctx.args))))


def split_runs(args: list[str]) -> list[list[str]]:
    """The pytest runs of `run-tests`' args, split at each `--then`."""
    runs: list[list[str]] = [[]]
    for arg in args:
        if arg == THEN:
            runs.append([])
        else:
            runs[-1].append(arg)
    return runs


def main() -> None:
    cli()
