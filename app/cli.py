"""The `polyshop` command line."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from app.settings import get_settings

cli = typer.Typer(help="polyshop: the data backend of an online shop.", no_args_is_help=True)


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # the app reads a trusted proxy's headers itself, from the one settings list
        # (`trusted_proxies`, app/middleware); uvicorn's own list would be a second one
        proxy_headers=False,
        timeout_graceful_shutdown=20,
        access_log=False,
    )


@cli.command()
def worker() -> None:
    """Run the worker: outbox relay and timed jobs."""
    from app import worker_metrics
    from app.logging import configure_logging
    from app.worker import run_worker

    settings = get_settings()
    configure_logging(settings)
    worker_metrics.start(settings)  # Prometheus endpoint of the worker process
    asyncio.run(run_worker(settings))


@cli.command()
def migrate() -> None:
    """Apply the Postgres schema migrations."""
    from storage import migrate as migrations

    settings = get_settings()
    migrations.upgrade(settings.database_url, settings.database_schema)
    typer.echo(f"schema {settings.database_schema}: migrated")


def _register_area_commands() -> None:
    import devstack
    from app.commands import registry

    cli.add_typer(devstack.cli, name="stack")
    for name, sub in registry.COMMAND_GROUPS.items():
        cli.add_typer(sub, name=name)
    for command in registry.COMMANDS:
        cli.command()(command)


def main() -> None:
    _register_area_commands()
    cli()
