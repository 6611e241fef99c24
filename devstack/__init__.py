"""The native dev stack: Postgres, Redis, OpenSearch, Elasticsearch and MinIO on fixed
loopback ports,
installed and supervised under ``.devstack/`` (no Docker needed); ``run_app`` adds the
app (API replicas behind nginx, worker). ``POLYSHOP_DEVSTACK_DIR`` and
``POLYSHOP_DEVSTACK_PORT_OFFSET`` (or ``instance(name, offset)`` for the functions'
``layout`` argument) select a second, independent instance.

CLI: ``python -m devstack up|down|status|start|stop|kill|logs|run-app|stop-app|run-tests``;
``cli`` is that typer app, for mounting elsewhere (``polyshop stack``).
"""

from devstack._api import (
    ServiceStatus,
    api_replicas,
    api_url,
    down,
    elasticsearch_config_dir,
    is_up,
    kill_service,
    log_path,
    opensearch_config_dir,
    rabbitmq_quorum_dir,
    run_app,
    run_tests,
    start_service,
    status,
    stop_app,
    stop_service,
    up,
    wait_app_ready,
    wait_ready,
)
from devstack._cli import cli
from devstack._config import Program, app_programs, default_replicas
from devstack._install import InstallError, ensure_hey, ensure_vegeta
from devstack._paths import LAYOUT, Layout, instance, layout_from_env
from devstack._services import SERVICES, URLS, Ports, ports, service_env, urls
from devstack._supervisor import StackError

__all__ = [
    "LAYOUT",
    "SERVICES",
    "URLS",
    "InstallError",
    "Layout",
    "Ports",
    "Program",
    "ServiceStatus",
    "StackError",
    "api_replicas",
    "api_url",
    "app_programs",
    "cli",
    "default_replicas",
    "down",
    "elasticsearch_config_dir",
    "ensure_hey",
    "ensure_vegeta",
    "instance",
    "is_up",
    "kill_service",
    "layout_from_env",
    "log_path",
    "opensearch_config_dir",
    "ports",
    "rabbitmq_quorum_dir",
    "run_app",
    "run_tests",
    "service_env",
    "start_service",
    "status",
    "stop_app",
    "stop_service",
    "up",
    "urls",
    "wait_app_ready",
    "wait_ready",
]
