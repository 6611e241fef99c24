"""Generated files: supervisord.conf, the OpenSearch node config and services.env."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devstack import _install
from devstack._paths import OPENSEARCH_LAUNCHER, REPO_ROOT, Layout
from devstack._services import (
    HOST,
    MINIO_CONSOLE_PORT,
    MINIO_PORT,
    MINIO_ROOT_PASSWORD,
    MINIO_ROOT_USER,
    OPENSEARCH_BASE_HTTP_PORT,
    OPENSEARCH_CLUSTER,
    OPENSEARCH_HEAP,
    OPENSEARCH_TRANSPORT_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    service_env,
)


@dataclass(frozen=True)
class Program:
    """One supervised program.

    ``command`` is split by supervisord (shlex rules, no shell). With ``numprocs``
    above 1, the command may use ``%(process_num)d`` (e.g. for distinct ports); any
    other literal ``%`` must be written ``%%``.
    """

    name: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    numprocs: int = 1
    user: str | None = None
    directory: Path = REPO_ROOT
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    stopasgroup: bool = True
    startsecs: int = 1
    priority: int = 100


def _quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./=:,@%*+" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env_line(env: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{v.replace("%", "%%").replace(chr(34), "")}"' for k, v in env.items())


def service_programs(layout: Layout) -> list[Program]:
    """The four backing services, as supervisord programs."""
    bindir = _install.postgres_bindir(layout)
    redis = _install.redis_server()
    if bindir is None or redis is None:
        raise _install.InstallError("postgres / redis-server are not installed")
    os_data = layout.data("opensearch")
    return [
        Program(
            name="postgres",
            command=[
                str(bindir / "postgres"),
                "-D",
                str(layout.data("postgres")),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"port={POSTGRES_PORT}",
                "-c",
                f"unix_socket_directories={layout.run / 'postgres'}",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=256MB",
            ],
            user=_install.postgres_os_user(),
            directory=layout.data("postgres"),
            stopsignal="INT",  # "fast" shutdown: abort transactions, checkpoint, exit
            stopwaitsecs=60,
            stopasgroup=False,  # the postmaster stops its backends itself
            priority=10,
        ),
        Program(
            name="redis",
            command=[
                str(redis),
                "--bind",
                HOST,
                "--port",
                str(REDIS_PORT),
                "--dir",
                str(layout.data("redis")),
                "--save",
                "",  # a cache: Postgres is the source of truth
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stopwaitsecs=10,
            priority=10,
        ),
        Program(
            name="opensearch",
            command=[
                str(_install.java_binary()),
                f"-Xms{OPENSEARCH_HEAP}",
                f"-Xmx{OPENSEARCH_HEAP}",
                "-cp",
                f"{layout.opensearch_lib}/*",
                str(OPENSEARCH_LAUNCHER),  # source-file mode; see the file for why
                "-basePath",
                str(os_data),
                "-numOfNode",
                "1",
                "-baseHttpPort",
                str(OPENSEARCH_BASE_HTTP_PORT),
                "-clusterName",
                OPENSEARCH_CLUSTER,
            ],
            directory=os_data,
            stopwaitsecs=40,
            startsecs=3,
            priority=20,
        ),
        Program(
            name="minio",
            command=[
                str(_install.minio_binary(layout)),
                "server",
                str(layout.data("minio")),
                "--address",
                f"{HOST}:{MINIO_PORT}",
                "--console-address",
                f"{HOST}:{MINIO_CONSOLE_PORT}",
                "--quiet",
            ],
            env={
                "MINIO_ROOT_USER": MINIO_ROOT_USER,
                "MINIO_ROOT_PASSWORD": MINIO_ROOT_PASSWORD,
                "MINIO_BROWSER": "on",
                "MINIO_UPDATE": "off",
            },
            stopwaitsecs=20,
            priority=20,
        ),
    ]


def app_programs(api_port: int = 8000) -> list[Program]:
    """The app's own processes for ``make run``: one API and one worker."""
    polyshop = str(Path(sys.executable).parent / "polyshop")
    return [
        Program(
            name="api",
            command=[polyshop, "serve", "--host", HOST, "--port", str(api_port)],
        ),
        Program(name="worker", command=[polyshop, "worker"]),
    ]


def render_program(program: Program, layout: Layout, *, app: bool) -> str:
    env = dict(program.env)
    if app:
        env = {**service_env(), **env}
    numbered = program.numprocs > 1
    log_name = f"{program.name}_%(process_num)02d.log" if numbered else f"{program.name}.log"
    lines = [
        f"[program:{program.name}]",
        "command=" + " ".join(_quote(c) for c in program.command),
        f"directory={program.directory}",
        f"numprocs={program.numprocs}",
        "process_name=%(program_name)s_%(process_num)02d" if numbered else "",
        f"user={program.user}" if program.user else "",
        f"environment={_env_line(env)}" if env else "",
        "autostart=true",
        "autorestart=false",  # a killed service stays down until started (fault tests)
        f"startsecs={program.startsecs}",
        "startretries=3",
        f"stopsignal={program.stopsignal}",
        f"stopwaitsecs={program.stopwaitsecs}",
        f"stopasgroup={str(program.stopasgroup).lower()}",
        "killasgroup=true",
        f"priority={program.priority}",
        "redirect_stderr=true",
        f"stdout_logfile={layout.logs / log_name}",
        "stdout_logfile_maxbytes=20MB",
        "stdout_logfile_backups=2",
    ]  # fmt: skip
    return "\n".join(line for line in lines if line) + "\n"


def render_supervisord_conf(layout: Layout, apps: Sequence[Program]) -> str:
    head = f"""\
; Generated by devstack; edits are overwritten on the next `python -m devstack up`.
[unix_http_server]
file={layout.supervisord_sock}
chmod=0700

[supervisord]
logfile={layout.logs / "supervisord.log"}
logfile_maxbytes=5MB
logfile_backups=1
pidfile={layout.supervisord_pid}
childlogdir={layout.logs}
directory={REPO_ROOT}
identifier=polyshop-devstack
minfds=4096

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{layout.supervisord_sock}
"""
    services = [render_program(p, layout, app=False) for p in service_programs(layout)]
    extra = [render_program(p, layout, app=True) for p in apps]
    return "\n".join([head, *services, *extra])


def write_if_changed(path: Path, text: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


# --- persisted app programs ---------------------------------------------------------


def load_app_programs(layout: Layout) -> list[Program]:
    if not layout.app_programs.exists():
        return []
    raw = json.loads(layout.app_programs.read_text())
    programs = []
    for item in raw:
        item["directory"] = Path(item["directory"])
        programs.append(Program(**item))
    return programs


def save_app_programs(layout: Layout, programs: Sequence[Program]) -> None:
    data = [
        {**asdict(p), "directory": str(p.directory), "command": list(p.command)} for p in programs
    ]
    write_if_changed(layout.app_programs, json.dumps(data, indent=2) + "\n")


# --- OpenSearch node config ---------------------------------------------------------

OPENSEARCH_YML = f"""\
# Generated by devstack (the runner would otherwise copy its template here).
# The runner itself sets cluster.name, node.name, http.port and the paths.
network.host: {HOST}
transport.port: {OPENSEARCH_TRANSPORT_PORT}
discovery.type: single-node
action.auto_create_index: true
# A fuller dev disk must not turn the indices read-only.
cluster.routing.allocation.disk.threshold_enabled: false
"""


def write_opensearch_config(layout: Layout) -> None:
    write_if_changed(layout.opensearch_config / "opensearch.yml", OPENSEARCH_YML)


def render_services_env() -> str:
    return "".join(f"{k}={v}\n" for k, v in service_env().items())
