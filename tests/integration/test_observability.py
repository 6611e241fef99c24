"""Request ids, JSON logs, the rate-limit metrics, the worker's metrics endpoint and the
Grafana dashboard against the metrics that really exist."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import urllib.request
from pathlib import Path

import httpx
import structlog
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from app import worker_metrics
from app.logging import configure_logging, event_log_context, request_ids
from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "polyshop-dashboard.json"

# Metrics the dashboard shows that no area exports yet (the panel stays empty until then).
ASSUMED_METRICS: set[str] = set()  # metrics the dashboard may name before they exist


async def test_the_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "trace-0123456789"})
    made = await client.get("/no/such/path")
    assert kept.headers["x-request-id"] == "trace-0123456789"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert made.status_code == 404  # problem answers carry it too


async def test_production_logs_are_json_lines_with_the_request_id(settings: Settings) -> None:
    production = settings.model_copy(update={"environment": "production"})
    app = create_app(production)
    stream = io.StringIO()
    configure_logging(production, stream=stream)
    try:
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                await c.get("/no/such/path", headers={"X-Request-ID": "req-observe-42"})
        logging.getLogger("uvicorn.error").info("Shutting down")  # a stdlib line
    finally:
        configure_logging(settings)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    access = [e for e in lines if e["event"] == "http.request"]
    assert len(access) == 1
    assert access[0]["request_id"] == "req-observe-42"
    assert access[0]["status"] == 404
    assert access[0]["level"] == "info"
    assert "timestamp" in access[0]
    # lines outside a request carry no request id
    assert all("request_id" not in e for e in lines if e["event"].startswith("stores."))
    # uvicorn's own lines (standard library logging) are JSON lines too
    assert {"event": "Shutting down", "level": "info"}.items() <= lines[-1].items()


def test_worker_lines_carry_the_request_id_of_the_event() -> None:
    payloads = [{"request_id": "r1"}, {"request_id": "r2"}, {}, {"request_id": "r1"}]
    assert request_ids(payloads) == ["r1", "r2"]
    with event_log_context({"request_id": "r9"}):
        assert structlog.contextvars.get_contextvars()["request_id"] == "r9"
    with event_log_context({"id": 3}):
        assert "request_id" not in structlog.contextvars.get_contextvars()
    assert "request_id" not in structlog.contextvars.get_contextvars()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_worker_serves_its_metrics(settings: Settings) -> None:
    port = _free_port()
    server = worker_metrics.start(
        settings.model_copy(update={"worker_metrics_port": port}), host="127.0.0.1"
    )
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        # a second worker on the same port does not crash, it just is not scraped
        taken = settings.model_copy(update={"worker_metrics_port": port})
        assert worker_metrics.start(taken, host="127.0.0.1") is None
    finally:
        server.shutdown()
        server.server_close()
    assert "# TYPE polyshop_outbox_backlog gauge" in text
    assert worker_metrics.start(settings.model_copy(update={"worker_metrics_port": 0})) is None


def _exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        suffixes = {
            "counter": ["_total", "_created"],
            "histogram": ["_bucket", "_count", "_sum", "_created"],
            "gauge": [""],
        }.get(family.type, [""])
        names.update(family.name + s for s in suffixes)
    return names


def test_the_dashboard_uses_metrics_that_exist() -> None:
    import app.metrics  # noqa: F401  (registers every metric)

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bpolyshop_[a-z_]+", e)}
    missing = used - _exported_names() - ASSUMED_METRICS
    assert not missing, f"the dashboard names metrics nobody exports: {sorted(missing)}"
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in ("request rate", "p50", "p99", "5xx", "cache hit", "rate-limit", "store up"):
        assert needed in titles


async def test_rejections_show_up_in_metrics(settings: Settings) -> None:
    tight = settings.model_copy(
        update={"rate_limit_address_capacity": 1, "rate_limit_address_per_s": 0.01}
    )
    app = create_app(tight)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            codes = [(await c.get("/no/such")).status_code for _ in range(2)]
            text = (await c.get("/metrics")).text
    assert codes == [404, 429]
    assert 'polyshop_ratelimit_rejections_total{bucket="address"}' in text
