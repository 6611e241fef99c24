"""The worker's Prometheus endpoint: outbox backlog and lag, search lag, ETL runs and
the other metrics the worker updates live in the worker process, so it serves them on
its own port (the API replicas serve theirs at /metrics)."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import start_http_server

from app.settings import Settings

log = structlog.get_logger()


def start(settings: Settings, *, host: str = "0.0.0.0") -> WSGIServer | None:
    """Serve /metrics from a daemon thread until the process ends (or `shutdown()` on the
    returned server); None when disabled (`worker_metrics_port` 0) or the port is taken."""
    if settings.worker_metrics_port == 0:
        return None
    try:
        server, _thread = start_http_server(settings.worker_metrics_port, addr=host)
    except OSError as exc:  # port taken (a second worker on this host): work on, unscraped
        log.warning("worker.metrics_not_served", port=settings.worker_metrics_port, error=str(exc))
        return None
    log.info("worker.metrics_serving", port=server.server_port)
    return server
