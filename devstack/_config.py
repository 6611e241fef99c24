"""Generated files: supervisord.conf, the OpenSearch and Elasticsearch node configs,
services.env and the load balancer's nginx.conf."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devstack import _install
from devstack._paths import LAYOUT, NGINX_TEMPLATE, OPENSEARCH_LAUNCHER, REPO_ROOT, Layout
from devstack._services import (
    ELASTICSEARCH_CLUSTER,
    HOST,
    MAILPIT_ALLOWED_RECIPIENTS,
    MINIO_ROOT_PASSWORD,
    MINIO_ROOT_USER,
    OPENSEARCH_CLUSTER,
    RABBITMQ_NODENAME,
    RABBITMQ_PASSWORD,
    RABBITMQ_USER,
    ports,
    service_env,
)

DEFAULT_REPLICAS = 2
ENV_REPLICAS = "POLYSHOP_API_REPLICAS"
# One nginx fronts every replica of this stack, so the per-address bucket lives in it
# by default (issue 19: an anonymous cached read then pays no Redis call for its limit);
# the replicas keep the API-key bucket. The shell or the caller's env may set it false.
ENV_ADDRESS_IN_PROXY = "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY"
ENV_RATE_LIMIT = "POLYSHOP_RATE_LIMIT_ENABLED"  # false: no limit in nginx either


@dataclass(frozen=True)
class Program:
    """One supervised program.

    ``command`` is split by supervisord (shlex rules, no shell). With ``numprocs``
    above 1 or a ``numprocs_start``, the processes are named ``<name>_<process_num>``
    and the command may use ``%(process_num)d`` (e.g. for distinct ports); any other
    literal ``%`` must be written ``%%``.
    """

    name: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    numprocs: int = 1
    numprocs_start: int = 0
    user: str | None = None
    directory: Path = REPO_ROOT
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    stopasgroup: bool = True
    startsecs: int = 1
    priority: int = 100
    # RabbitMQ's start script exits 0 when the VM dies: only "restart on any exit"
    # brings such a program back. The others stay down until started (fault tests).
    autorestart: bool = False


def _quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./=:,@%*+" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env_line(env: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{v.replace("%", "%%").replace(chr(34), "")}"' for k, v in env.items())


def service_programs(layout: Layout) -> list[Program]:
    """The backing services, as supervisord programs."""
    bindir = _install.postgres_bindir(layout)
    redis = _install.redis_server()
    if bindir is None or redis is None:
        raise _install.InstallError("postgres / redis-server are not installed")
    os_data = layout.data("opensearch")
    port = ports(layout)
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
                f"port={port.postgres}",
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
                str(port.redis),
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
                f"-Xms{layout.opensearch_heap}",
                f"-Xmx{layout.opensearch_heap}",
                "-cp",
                f"{layout.opensearch_lib}/*",
                str(OPENSEARCH_LAUNCHER),  # source-file mode; see the file for why
                "-basePath",
                str(os_data),
                "-numOfNode",
                "1",
                "-baseHttpPort",
                str(port.opensearch_base),
                "-clusterName",
                OPENSEARCH_CLUSTER,
            ],
            directory=os_data,
            stopwaitsecs=40,
            startsecs=3,
            priority=20,
        ),
        Program(
            name="elasticsearch",
            command=elasticsearch_command(layout),
            directory=layout.data("elasticsearch"),
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
                f"{HOST}:{port.minio}",
                "--console-address",
                f"{HOST}:{port.minio_console}",
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
        *broker_programs(layout),
        mailpit_program(layout),
    ]


def elasticsearch_command(layout: Layout) -> list[str]:
    """One JVM: the server jars on the module path, the launcher on the class path; the
    node reads its settings from ``elasticsearch_config`` (see ``write_elasticsearch_config``)."""
    home = layout.elasticsearch_home
    return [
        str(_install.elasticsearch_java()),
        f"-Xms{layout.elasticsearch_heap}",
        f"-Xmx{layout.elasticsearch_heap}",
        "-XX:+UseSerialGC",  # a small heap on a shared machine: the least RSS
        "-Dfile.encoding=UTF-8",
        f"-Djava.io.tmpdir={layout.data('elasticsearch') / 'tmp'}",
        "-Dlog4j2.disable.jmx=true",
        "--enable-native-access=ALL-UNNAMED,org.apache.lucene.core,org.elasticsearch.nativeaccess",
        "--module-path",
        str(home / "lib"),
        "--add-modules",
        "ALL-MODULE-PATH",
        "-cp",
        str(home / "launcher"),
        "DevstackElasticsearch",
        str(home),
        str(layout.elasticsearch_config),
    ]


def rabbitmq_env(layout: Layout) -> dict[str, str]:
    """What the node and its CLI (rabbitmqctl, rabbitmq-diagnostics) both need to see:
    our HOME (cookie), node name, ports, and files under the stack root only."""
    data = layout.data("rabbitmq")
    port = ports(layout)
    return {
        "HOME": str(data / "home"),
        "RABBITMQ_NODENAME": RABBITMQ_NODENAME,
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(port.rabbitmq),
        # The default is AMQP + 20000, which can exceed 65535 and then fails to boot.
        "RABBITMQ_DIST_PORT": str(port.rabbitmq_dist),
        "ERL_EPMD_PORT": str(port.epmd),
        "ERL_EPMD_ADDRESS": HOST,
        "RABBITMQ_CONF_ENV_FILE": str(data / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(data / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
        "RABBITMQ_LOG_BASE": str(layout.logs / "rabbitmq"),
        "RABBITMQ_LOGS": "-",  # to stdout: supervisord's rabbitmq.log
        "RABBITMQ_PID_FILE": str(layout.run / "rabbitmq.pid"),
        # Schedulers sleep instead of busy-waiting: an idle node then takes next to no
        # CPU on a shared 2-core machine, and boots faster when the machine is loaded.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none",
    }


RABBITMQ_CONF = """\
# Generated by devstack; edits are overwritten on the next `python -m devstack up`.
listeners.tcp.default = {host}:{amqp}
management.tcp.ip = {host}
management.tcp.port = {management}
# Created on the first boot of an empty node (dev stack only, loopback only).
default_user = {user}
default_pass = {password}
loopback_users = none
log.console = true
log.console.level = info
log.file = false
# A small Ra WAL (default 512 MiB): a restart after a crash replays at most this much,
# and a quorum queue keeps the entries of the current WAL file in memory (ETS) until it
# rolls over. At 64 MiB the node climbed 109 -> 182 MiB over 27 minutes of the soak
# before the rollover dropped it to 143 (docs/benchmarks.md, "Soak"); a shop's job
# queues carry a few messages a second.
raft.wal_max_size_bytes = 8388608
"""


def write_rabbitmq_config(layout: Layout) -> None:
    data = layout.data("rabbitmq")
    port = ports(layout)
    text = RABBITMQ_CONF.format(
        host=HOST,
        amqp=port.rabbitmq,
        management=port.rabbitmq_management,
        user=RABBITMQ_USER,
        password=RABBITMQ_PASSWORD,
    )
    write_if_changed(data / "rabbitmq.conf", text)
    write_if_changed(data / "enabled_plugins", "[rabbitmq_management].\n")
    write_if_changed(data / "rabbitmq-env.conf", "# empty: every setting is in the environment\n")
    _install.ensure_rabbitmq_cookie(data / "home")


def broker_programs(layout: Layout) -> list[Program]:
    """epmd on its own port (run in the foreground: otherwise the node starts one that
    daemonizes and outlives everything) and the RabbitMQ node."""
    sbin = _install.rabbitmq_sbin()
    epmd = _install.epmd_binary()
    if sbin is None or epmd is None:
        raise _install.InstallError("rabbitmq-server (and epmd) are not installed")
    port = ports(layout)
    return [
        Program(
            name="epmd",
            command=[str(epmd), "-address", HOST, "-port", str(port.epmd)],
            env={"ERL_EPMD_PORT": str(port.epmd)},
            directory=layout.data("epmd"),
            stopwaitsecs=5,
            priority=5,
            autorestart=True,
        ),
        Program(
            name="rabbitmq",
            command=[str(sbin / "rabbitmq-server")],
            env=rabbitmq_env(layout),
            directory=layout.data("rabbitmq"),
            stopwaitsecs=30,
            startsecs=3,
            priority=20,
            autorestart=True,
        ),
    ]


def mailpit_program(layout: Layout) -> Program:
    port = ports(layout)
    return Program(
        name="mailpit",
        command=[
            str(_install.mailpit_binary(layout)),
            "--smtp",
            f"{HOST}:{port.mailpit_smtp}",
            "--listen",
            f"{HOST}:{port.mailpit_http}",
            "--database",
            str(layout.data("mailpit") / "mailpit.db"),
            "--max",
            "0",  # keep every message (the default prunes beyond 500: benchmarks send more)
            "--smtp-allowed-recipients",
            MAILPIT_ALLOWED_RECIPIENTS.replace("%", "%%"),
        ],
        directory=layout.data("mailpit"),
        stopwaitsecs=10,
        priority=20,
    )


def default_replicas() -> int:
    """``POLYSHOP_API_REPLICAS`` or 2."""
    raw = os.environ.get(ENV_REPLICAS, "")
    replicas = int(raw) if raw.strip() else DEFAULT_REPLICAS
    if replicas < 1:
        raise ValueError(f"{ENV_REPLICAS} must be at least 1, not {replicas}")
    return replicas


def nginx_binary() -> Path:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        raise _install.InstallError("nginx is not installed (Debian package `nginx`)")
    return Path(found)


def app_programs(
    replicas: int | None = None,
    *,
    layout: Layout = LAYOUT,
    env: Mapping[str, str] | None = None,
) -> list[Program]:
    """The app's own processes for ``make run``: ``replicas`` API processes on ports
    ``api+1 .. api+N`` (named ``api_<port>``), nginx in front of them on ``api``, and
    the worker. ``env`` adds settings (e.g. a schema) to every app process.

    The replicas get ``POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY=true`` (nginx limits each
    address, ``render_nginx_conf``) unless ``env`` or the shell sets it."""
    replicas = default_replicas() if replicas is None else replicas
    if replicas < 1:
        raise ValueError("at least one API replica")
    port = ports(layout)
    polyshop = str(Path(sys.executable).parent / "polyshop")
    app_env = dict(env or {})
    # nginx.conf is rendered from the api program's env: the shell's say goes into it
    limits = {
        name: app_env.get(name, os.environ.get(name, default))
        for name, default in ((ENV_ADDRESS_IN_PROXY, "true"), (ENV_RATE_LIMIT, "true"))
    }
    return [
        Program(
            name="api",
            command=[polyshop, "serve", "--host", HOST, "--port", "%(process_num)d"],
            env={**app_env, **limits},
            numprocs=replicas,
            numprocs_start=port.api + 1,
            stopwaitsecs=25,  # uvicorn drains in-flight requests for up to 20 s
        ),
        Program(
            name="worker",
            command=[polyshop, "worker"],
            env={"POLYSHOP_WORKER_METRICS_PORT": str(port.worker_metrics), **app_env},
            stopwaitsecs=30,
        ),
        Program(
            name="notifications",
            command=[polyshop, "notifications"],
            env={
                "POLYSHOP_NOTIFICATIONS_METRICS_PORT": str(port.notifications_metrics),
                **app_env,
            },
            stopwaitsecs=30,  # finishes the e-mails in flight (graceful shutdown)
        ),
        Program(
            name="nginx",
            command=[
                str(nginx_binary()),
                "-p",
                str(layout.nginx_run),
                "-e",
                str(layout.logs / "nginx-error.log"),  # before the config is read
                "-c",
                str(layout.nginx_conf),
                "-g",
                "daemon off;",
            ],
            stopsignal="QUIT",  # graceful: finish the requests being proxied
            stopwaitsecs=25,
            priority=200,  # after the replicas
        ),
    ]


# The app's defaults of rate_limit_address_per_s / _capacity (devstack does not import
# app/; tests/unit/test_devstack_config.py checks that they agree).
ADDRESS_RATE_PER_S = 1200
ADDRESS_BURST = 2400


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def render_nginx_conf(
    layout: Layout,
    upstream_ports: Sequence[int],
    listen_port: int,
    app_env: Mapping[str, str] | None = None,
) -> str:
    """deploy/nginx.devstack.conf with this instance's ports and paths filled in, and the
    per-address limit on where the replicas' settings (`app_env`) hand it to nginx (and
    do not turn rate limiting off altogether)."""
    env = app_env or {}
    in_proxy = _true(env.get(ENV_ADDRESS_IN_PROXY, "")) and _true(env.get(ENV_RATE_LIMIT, "true"))
    rate = round(float(env.get("POLYSHOP_RATE_LIMIT_ADDRESS_PER_S", ADDRESS_RATE_PER_S)))
    burst = int(env.get("POLYSHOP_RATE_LIMIT_ADDRESS_CAPACITY", ADDRESS_BURST))
    servers = "\n".join(
        f"        server {HOST}:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports
    )
    # As root, nginx's workers would otherwise run as `nobody`, who cannot write the
    # temp dirs under the stack root.
    user = "user root;" if os.geteuid() == 0 else ""
    values = {
        "@USER_DIRECTIVE@": user,
        "@RUN_DIR@": str(layout.nginx_run),
        "@LOG_DIR@": str(layout.logs),
        "@UPSTREAM_SERVERS@": servers,
        "@HOST@": HOST,
        "@LISTEN_PORT@": str(listen_port),
        "@ADDRESS_KEY@": "$binary_remote_addr" if in_proxy else '""',
        "@ADDRESS_RATE@": str(max(1, rate)),
        "@ADDRESS_BURST@": str(max(1, burst)),
    }
    text = NGINX_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def write_nginx_conf(layout: Layout, apps: Sequence[Program]) -> bool:
    """Write nginx.conf for the api program among ``apps`` (if there is one); True if
    the file changed."""
    api = next((p for p in apps if p.name == "api"), None)
    if api is None:
        return False
    layout.nginx_run.mkdir(parents=True, exist_ok=True)
    upstream = [api.numprocs_start + i for i in range(api.numprocs)]
    return write_if_changed(
        layout.nginx_conf, render_nginx_conf(layout, upstream, ports(layout).api, api.env)
    )


def render_program(program: Program, layout: Layout, *, app: bool) -> str:
    env = dict(program.env)
    if app:
        env = {**service_env(layout), **env}
    numbered = program.numprocs > 1 or program.numprocs_start > 0
    log_name = f"{program.name}_%(process_num)02d.log" if numbered else f"{program.name}.log"
    lines = [
        f"[program:{program.name}]",
        "command=" + " ".join(_quote(c) for c in program.command),
        f"directory={program.directory}",
        f"numprocs={program.numprocs}",
        f"numprocs_start={program.numprocs_start}" if program.numprocs_start else "",
        "process_name=%(program_name)s_%(process_num)02d" if numbered else "",
        f"user={program.user}" if program.user else "",
        f"environment={_env_line(env)}" if env else "",
        "autostart=true",
        # false: a killed service stays down until started (fault tests)
        f"autorestart={str(program.autorestart).lower()}",
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
    offset = layout.port_offset
    identifier = f"polyshop-devstack-{offset}" if offset else "polyshop-devstack"
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
identifier={identifier}
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
        item.setdefault("numprocs_start", 0)
        programs.append(Program(**item))
    return programs


def save_app_programs(layout: Layout, programs: Sequence[Program]) -> None:
    data = [
        {**asdict(p), "directory": str(p.directory), "command": list(p.command)} for p in programs
    ]
    write_if_changed(layout.app_programs, json.dumps(data, indent=2) + "\n")


# --- OpenSearch node config ---------------------------------------------------------

OPENSEARCH_YML = """\
# Generated by devstack (the runner would otherwise copy its template here).
# The runner itself sets cluster.name, node.name, http.port and the paths.
network.host: {host}
transport.port: {transport_port}
discovery.type: single-node
action.auto_create_index: true
# A fuller dev disk must not turn the indices read-only.
cluster.routing.allocation.disk.threshold_enabled: false
"""


def write_opensearch_config(layout: Layout) -> None:
    text = OPENSEARCH_YML.format(host=HOST, transport_port=ports(layout).opensearch_transport)
    write_if_changed(layout.opensearch_config / "opensearch.yml", text)


# --- Elasticsearch node config ------------------------------------------------------

ELASTICSEARCH_YML = """\
# Generated by devstack; edits are overwritten on the next `python -m devstack up`.
cluster.name: {cluster}
node.name: devstack
network.host: {host}
http.port: {http_port}
transport.port: {transport_port}
discovery.type: single-node
path.data: {data}
path.logs: {logs}
action.auto_create_index: true
# A fuller dev disk must not turn the indices read-only.
cluster.routing.allocation.disk.threshold_enabled: false
"""

ELASTICSEARCH_LOG4J = """\
# Generated by devstack: everything to the console (supervisord keeps the log).
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
"""


def write_elasticsearch_config(layout: Layout) -> None:
    port = ports(layout)
    text = ELASTICSEARCH_YML.format(
        cluster=ELASTICSEARCH_CLUSTER,
        host=HOST,
        http_port=port.elasticsearch_http,
        transport_port=port.elasticsearch_transport,
        data=layout.data("elasticsearch") / "node",
        logs=layout.logs / "elasticsearch",
    )
    write_if_changed(layout.elasticsearch_config / "elasticsearch.yml", text)
    write_if_changed(layout.elasticsearch_config / "log4j2.properties", ELASTICSEARCH_LOG4J)
    (layout.data("elasticsearch") / "tmp").mkdir(parents=True, exist_ok=True)


def render_services_env(layout: Layout = LAYOUT) -> str:
    return "".join(f"{k}={v}\n" for k, v in service_env(layout).items())
