"""The dev stack's public functions: up, down, status and per-service control."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import xmlrpc.client
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from devstack import _config, _install, _ready, _supervisor
from devstack._config import Program
from devstack._paths import LAYOUT, Layout
from devstack._progress import Steps, console
from devstack._services import RABBITMQ_NODENAME, SERVICES, ports, service_env, urls
from devstack._supervisor import StackError

APP_START_TIMEOUT = 30.0
# importing the app takes a while on a busy 2-core machine (over 90 s at a load of 25)
APP_READY_TIMEOUT = float(os.environ.get("POLYSHOP_DEVSTACK_APP_READY_S", "") or 90.0)
START_ATTEMPTS = 5


class _NotSettled(Exception):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # supervisord's state name (RUNNING, STOPPED, EXITED, FATAL, ...) or DOWN
    pid: int | None
    url: str


def _ensure_dirs(layout: Layout) -> None:
    for path in (layout.bin_dir, layout.logs, layout.run, *(layout.data(s) for s in SERVICES)):
        path.mkdir(parents=True, exist_ok=True)
    if (user := _install.postgres_os_user()) is not None:
        # postgres (the OS user) must be able to traverse to its data dir
        layout.data("postgres").parent.chmod(0o755)
        shutil.chown(layout.data("postgres"), user, user)


def _install_all(layout: Layout, steps: Steps) -> None:
    """Install what is missing; the slow installs run side by side."""

    def apt_then_initdb() -> None:
        if _install.apt_needed(layout):
            with steps.step("apt-get install postgresql redis-server nginx rabbitmq-server"):
                _install.ensure_apt_packages(layout)
        if not (layout.data("postgres") / "PG_VERSION").exists():
            with steps.step("initdb (Postgres data directory)"):
                _install.ensure_postgres_initdb(layout)
        else:
            _install.ensure_postgres_initdb(layout)  # only fixes the socket dir

    def minio() -> None:
        if not _install.minio_binary(layout).exists():
            with steps.step("go install minio (first time: a few minutes)"):
                _install.ensure_minio(layout)
        else:
            _install.ensure_minio(layout)  # rebuilds only if the pinned version changed

    def opensearch() -> None:
        if _install.opensearch_jars_needed(layout):
            with steps.step("mvn: OpenSearch jars (first time: about a minute)"):
                _install.ensure_opensearch_jars(layout)

    def elasticsearch() -> None:
        if _install.elasticsearch_needed(layout):
            with steps.step("mvn: Elasticsearch jars + shim plugin (first time: a minute or two)"):
                _install.ensure_elasticsearch(layout)

    def mailpit() -> None:
        if not _install.mailpit_binary(layout).exists():
            with steps.step("go install mailpit (first time: about 30 s)"):
                _install.ensure_mailpit(layout)
        else:
            _install.ensure_mailpit(layout)  # rebuilds only if the pinned version changed

    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = (apt_then_initdb, minio, opensearch, elasticsearch, mailpit)
        futures = [pool.submit(job) for job in jobs]
        for future in futures:
            future.result()


def _ports_in_use(layout: Layout) -> list[str]:
    busy = []
    for name, numbers in ports(layout).by_service().items():
        for port in numbers:
            with socket.socket() as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    busy.append(f"{name}:{port}")
    return busy


def _wait_all_ready(layout: Layout, names: Sequence[str], steps: Steps) -> None:
    def one(name: str) -> None:
        with steps.step(f"{name} ready  {urls(layout)[name]}"):
            wait_ready(name, layout=layout)

    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        for future in [pool.submit(one, n) for n in names]:
            future.result()


def wait_ready(name: str, timeout: float | None = None, *, layout: Layout = LAYOUT) -> None:
    """Block until service ``name`` answers its readiness probe (StackError otherwise)."""
    try:
        _ready.wait_ready(layout, name, timeout)
    except StackError:
        raise
    except Exception as exc:
        raise StackError(
            f"{name} not ready: {exc!r}; last log lines:\n{_ready.log_tail(layout, name)}"
        ) from exc


def _start_app_programs(layout: Layout, apps: Sequence[Program]) -> None:
    with _supervisor.rpc(layout) as server:
        for program in apps:
            server.startProcessGroup(program.name, False)
    names = {p.name for p in apps}

    def settled() -> list[dict[str, Any]]:
        procs = [p for p in _supervisor.call(layout, "getAllProcessInfo") if p["group"] in names]
        if any(p["statename"] in ("STARTING", "BACKOFF") for p in procs):
            raise _NotSettled
        return procs

    procs: list[dict[str, Any]] = []
    for attempt in Retrying(
        stop=stop_after_delay(APP_START_TIMEOUT),
        wait=wait_fixed(0.2),
        retry=retry_if_exception_type(_NotSettled),
        reraise=True,
    ):
        with attempt:
            procs = settled()
    failed = [p for p in procs if p["statename"] != "RUNNING"]
    if failed:
        details = "\n".join(
            f"{p['name']} is {p['statename']}; log:\n{_ready.log_tail(layout, p['name'])}"
            for p in failed
        )
        raise StackError(details)


def up(
    progress: bool = True,
    extra_programs: Sequence[Program] | None = None,
    *,
    layout: Layout = LAYOUT,
) -> dict[str, str]:
    """Install what is missing, start the stack, wait until every service answers.

    ``extra_programs`` (e.g. ``app_programs()``) replaces the supervised app
    programs; ``None`` keeps the ones from the previous ``up``, ``[]`` removes them.
    Returns the ``POLYSHOP_*`` variables, also written to ``.devstack/services.env``.
    """
    if too_high := ports(layout).above_max():
        # else a service would only fail to get ready (the fault suite at +6400 once)
        raise StackError(f"port offset {layout.port_offset} puts ports above 65535: {too_high}")
    with Steps(progress) as steps:
        _ensure_dirs(layout)
        _install_all(layout, steps)
        if extra_programs is not None:
            _config.save_app_programs(layout, extra_programs)
        apps = _config.load_app_programs(layout)
        _config.write_opensearch_config(layout)
        _config.write_elasticsearch_config(layout)
        _config.write_rabbitmq_config(layout)
        nginx_changed = _config.write_nginx_conf(layout, apps)
        _config.write_if_changed(layout.services_env, _config.render_services_env(layout))
        changed = _config.write_if_changed(
            layout.supervisord_conf, _config.render_supervisord_conf(layout, apps)
        )
        if _supervisor.supervisord_pid(layout) is None:
            if busy := _ports_in_use(layout):
                raise StackError(
                    f"ports already in use by processes devstack does not manage: {busy}"
                )
            with steps.step("start supervisord"):
                _supervisor.start_supervisord(layout)
        else:
            if changed:
                with steps.step("apply changed supervisord.conf"):
                    _supervisor.apply_config(layout)
            info = _supervisor.process_info(layout)
            for name in SERVICES:
                if info[name]["statename"] not in ("RUNNING", "STARTING"):
                    with steps.step(f"start {name}"):
                        _supervisor.call(layout, "startProcess", name, False)
        _wait_all_ready(layout, SERVICES, steps)
        if apps:
            with steps.step(f"start {', '.join(p.name for p in apps)}"):
                _start_app_programs(layout, apps)
            if nginx_changed:
                _reload_nginx(layout)
            if any(p.name == "api" for p in apps):
                with steps.step(f"API ready  {api_url(layout=layout)}"):
                    wait_app_ready(layout=layout)
    return service_env(layout)


def _reload_nginx(layout: Layout) -> None:
    """A running nginx keeps its old upstream list (its program did not change, only
    the file it reads): SIGHUP makes it re-read the file without dropping requests."""
    nginx = _supervisor.process_info(layout).get("nginx")
    if nginx is not None and nginx["statename"] == "RUNNING":
        _supervisor.call(layout, "signalProcess", "nginx", "HUP")


def run_app(
    progress: bool = True,
    *,
    replicas: int | None = None,
    env: Mapping[str, str] | None = None,
    layout: Layout = LAYOUT,
) -> dict[str, str]:
    """``up`` plus the app: ``replicas`` API processes (default ``POLYSHOP_API_REPLICAS``
    or 2) on ports 8001.. behind nginx on 127.0.0.1:8000, and the worker, supervised
    like the services. ``env`` adds settings to every app process."""
    programs = _config.app_programs(replicas, layout=layout, env=env)
    return up(progress, extra_programs=programs, layout=layout)


def api_url(*, layout: Layout = LAYOUT) -> str:
    """The load balancer in front of the API replicas started by ``run_app``."""
    return f"http://127.0.0.1:{ports(layout).api}"


def wait_app_ready(timeout: float = APP_READY_TIMEOUT, *, layout: Layout = LAYOUT) -> None:
    """Block until every running API replica and nginx answer ``GET /healthz``."""
    info = _supervisor.process_info(layout)
    urls_to_probe = [
        f"http://127.0.0.1:{key.rsplit('_', 1)[1]}/healthz"
        for key in api_replicas(layout=layout)
        if info[key]["statename"] == "RUNNING"
    ]
    urls_to_probe.append(f"{api_url(layout=layout)}/healthz")
    for url in urls_to_probe:
        try:
            _ready.wait_http_ok(url, timeout)
        except Exception as exc:
            raise StackError(f"{url} did not answer 200 within {timeout:.0f}s: {exc!r}") from exc


def api_replicas(*, layout: Layout = LAYOUT) -> list[str]:
    """The supervisord names (``api:api_<port>``) of the running app's API replicas."""
    if _supervisor.supervisord_pid(layout) is None:
        return []
    return sorted(
        key
        for key, proc in _supervisor.process_info(layout).items()
        if proc["group"] == "api" and key.startswith("api:")
    )


def stop_app(progress: bool = True, *, layout: Layout = LAYOUT) -> None:
    """Stop and forget the app programs (api, worker); the services keep running."""
    if _supervisor.supervisord_pid(layout) is None:
        layout.app_programs.unlink(missing_ok=True)
        return
    up(progress, extra_programs=[], layout=layout)


def down(progress: bool = True, *, layout: Layout = LAYOUT) -> None:
    """Stop every program, then supervisord (by pid). Data stays in ``.devstack/data``.

    The app programs are forgotten too: the next ``up`` starts only the services.
    """
    layout.app_programs.unlink(missing_ok=True)
    if _supervisor.supervisord_pid(layout) is None:
        return
    with Steps(progress) as steps, steps.step("stop the stack"):
        _supervisor.stop_supervisord(layout)


def is_up(*, layout: Layout = LAYOUT) -> bool:
    """True when supervisord runs and every service is RUNNING (not a readiness probe)."""
    return all(s.state == "RUNNING" for s in status(layout=layout) if s.name in SERVICES)


def status(*, layout: Layout = LAYOUT) -> list[ServiceStatus]:
    """One entry per service (and app process), from supervisord's point of view."""
    if _supervisor.supervisord_pid(layout) is None:
        return [ServiceStatus(name, "DOWN", None, urls(layout)[name]) for name in SERVICES]
    result = []
    for key, proc in _supervisor.process_info(layout).items():
        if ":" in key and proc["group"] == proc["name"]:
            continue  # listed under its short name
        name = proc["name"] if proc["group"] == proc["name"] else key
        result.append(
            ServiceStatus(
                name=name,
                state=proc["statename"],
                pid=proc["pid"] or None,
                url=_program_url(layout, proc),
            )
        )
    order = {n: i for i, n in enumerate(SERVICES)}
    return sorted(result, key=lambda s: (order.get(s.name, len(order)), s.name))


def _program_url(layout: Layout, proc: dict[str, Any]) -> str:
    if proc["group"] == "nginx":
        return api_url(layout=layout)
    if proc["group"] == "api":
        return f"http://127.0.0.1:{proc['name'].rsplit('_', 1)[1]}"
    return urls(layout).get(proc["group"], "")


def _require_supervisord(layout: Layout) -> None:
    if _supervisor.supervisord_pid(layout) is None:
        raise StackError("the dev stack is not running: `python -m devstack up` first")


def start_service(name: str, wait: bool = True, *, layout: Layout = LAYOUT) -> None:
    """Start one service (no-op if running) and, with ``wait``, until it is ready.

    A service that exits at once is started again a few times: our ports lie in the
    kernel's ephemeral range, so right after a crash a client socket may briefly hold
    the port ("Address already in use")."""
    _require_supervisord(layout)

    def start_once() -> None:
        if _supervisor.process_info(layout)[name]["statename"] not in ("RUNNING", "STARTING"):
            _supervisor.call(layout, "startProcess", name, True)
        if wait and name in SERVICES:
            wait_ready(name, layout=layout)

    for attempt in Retrying(
        stop=stop_after_attempt(START_ATTEMPTS),
        wait=wait_fixed(2),
        retry=retry_if_exception_type((_ready.ServiceFailed, xmlrpc.client.Fault)),
        reraise=True,
    ):
        with attempt:
            start_once()


def stop_service(name: str, *, layout: Layout = LAYOUT) -> None:
    """Stop one service gracefully (its stop signal, then SIGKILL after stopwaitsecs)."""
    _require_supervisord(layout)
    if _supervisor.process_info(layout)[name]["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
        _supervisor.call(layout, "stopProcess", name, True)


# Killed as a whole process group: RabbitMQ's start script is not the VM (beam.smp is
# its child), and a crash of the script alone would leave the node running.
GROUP_KILLED = frozenset({"rabbitmq"})


def kill_service(name: str, *, layout: Layout = LAYOUT) -> None:
    """SIGKILL the service's main process (a crash, for fault tests); it stays down
    (RabbitMQ and epmd excepted: supervisord restarts them on any exit)."""
    _require_supervisord(layout)
    proc = _supervisor.process_info(layout)[name]
    if proc["statename"] != "RUNNING" or not proc["pid"]:
        return
    if name in GROUP_KILLED:
        os.killpg(proc["pid"], signal.SIGKILL)  # supervisord made it a group leader
    else:
        os.kill(proc["pid"], signal.SIGKILL)
    for attempt in Retrying(
        stop=stop_after_delay(10),
        wait=wait_fixed(0.05),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    ):
        with attempt:
            assert _supervisor.process_info(layout)[name]["statename"] != "RUNNING"


def rabbitmq_quorum_dir(*, layout: Layout = LAYOUT) -> Path:
    """The node's Ra data dir: the quorum queues' logs and ``names.dets``, Ra's
    directory of queue name -> server id (tests wait for a new queue to be in it
    before they kill the node; see docs/jobs.md)."""
    node = RABBITMQ_NODENAME
    return layout.data("rabbitmq") / "mnesia" / node / "quorum" / node


def log_path(name: str, *, layout: Layout = LAYOUT) -> Path:
    return layout.logs / f"{name}.log"


def opensearch_config_dir(*, layout: Layout = LAYOUT) -> Path:
    """The OpenSearch node's config dir: files (e.g. synonyms) there are readable by the
    node under a path relative to it, e.g. ``"synonyms_path": "analysis/synonyms.txt"``."""
    return layout.opensearch_config


def elasticsearch_config_dir(*, layout: Layout = LAYOUT) -> Path:
    """The Elasticsearch node's config dir (``synonyms_path`` etc. are relative to it)."""
    return layout.elasticsearch_config


def run_tests(pytest_runs: Sequence[Sequence[str]], *, layout: Layout = LAYOUT) -> int:
    """Bring the stack up, run pytest once per argument list, in turn (every run, also
    after a failed one), and stop afterwards whatever this call started.

    Returns the first non-zero exit code of the runs, 0 if all passed (or 1 if the
    stack could not be started).
    """
    had_supervisord = _supervisor.supervisord_pid(layout) is not None
    before = {s.name: s.state for s in status(layout=layout)} if had_supervisord else {}
    try:
        try:
            service_vars = up(progress=True, layout=layout)
        except (StackError, _install.InstallError) as exc:
            console.print(f"[red]dev stack failed to start:[/red] {exc}")
            return 1
        codes = []
        for pytest_args in pytest_runs:
            # pytest, and every process it starts, reaches this instance's services only
            # (a bare Settings() would otherwise read the default ports' stack)
            codes.append(
                subprocess.run(
                    [sys.executable, "-m", "pytest", *pytest_args],
                    check=False,
                    env={**os.environ, **service_vars},
                ).returncode
            )
        return next((code for code in codes if code != 0), 0)
    finally:
        if not had_supervisord:
            down(progress=True, layout=layout)
        else:
            for name in SERVICES:
                if before.get(name) != "RUNNING" and _supervisor.supervisord_pid(layout):
                    stop_service(name, layout=layout)
