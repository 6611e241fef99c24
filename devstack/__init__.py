"""The native dev stack: Postgres, Redis, OpenSearch and MinIO on fixed loopback ports,
installed and supervised under ``.devstack/`` (no Docker needed).

CLI: ``python -m devstack up|down|status|start|stop|kill|logs|run-app|stop-app|run-tests``;
``cli`` is that typer app, for mounting elsewhere (``polyshop stack``).
"""

from devstack._api import (
    ServiceStatus,
    down,
    is_up,
    kill_service,
    log_path,
    opensearch_config_dir,
    run_app,
    run_tests,
    start_service,
    status,
    stop_app,
    stop_service,
    up,
    wait_ready,
)
from devstack._cli import cli
from devstack._config import Program, app_programs
from devstack._install import InstallError
from devstack._paths import LAYOUT, Layout
from devstack._services import SERVICES, URLS, service_env
from devstack._supervisor import StackError

__all__ = [
    "LAYOUT",
    "SERVICES",
    "URLS",
    "InstallError",
    "Layout",
    "Program",
    "ServiceStatus",
    "StackError",
    "app_programs",
    "cli",
    "down",
    "is_up",
    "kill_service",
    "log_path",
    "opensearch_config_dir",
    "run_app",
    "run_tests",
    "service_env",
    "start_service",
    "status",
    "stop_app",
    "stop_service",
    "up",
    "wait_ready",
]
