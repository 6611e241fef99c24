"""The FastAPI application factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from app import gc_pauses
from app.etl_schedule import watch_data_age
from app.key_revocations import watching_key_revocations
from app.logging import configure_logging
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS
from app.middleware import install_middleware
from app.problems import install_problem_handlers
from app.routes import health
from app.routes.order_read import order_read_routes
from app.routes.product_list_read import product_list_routes
from app.routes.product_read import product_read_routes
from app.routes.registry import feature_routers
from app.routes.search_read import search_read_routes
from app.routes.thin import install_thin_routes
from app.settings import Settings, get_settings
from app.stores import StoresFactory, open_stores

API_DESCRIPTION = """The data backend of the polyshop online shop.

Errors are RFC 9457 `application/problem+json`. Authenticate with
`Authorization: Bearer <api key>` (keys come from `polyshop keys create`).
"""


def create_app(
    settings: Settings | None = None, *, stores_factory: StoresFactory = open_stores
) -> FastAPI:
    """The API. `stores_factory` opens the process's clients for the lifespan; tests
    pass their own (fakes, or stores opened elsewhere) to assemble the app the same way."""
    settings = settings or get_settings()
    configure_logging(settings)
    gc_pauses.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with stores_factory(settings) as stores, watching_key_revocations(stores):
            app.state.stores = stores
            watch_data_age(stores.analytics)  # the gauge reads the store at scrape time
            if settings.gc_freeze_at_startup:
                gc_pauses.freeze_startup_heap()
            yield

    app = FastAPI(
        title="polyshop",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    _install_offline_docs(app)
    # limits and request ids inside the metrics middleware, so 429/413 are counted too
    install_middleware(app, settings)
    _install_request_metrics(app)
    app.include_router(health.router)
    for router in feature_routers():
        app.include_router(router)
    # the thin GET /products/{id}, GET /products (a cached page), the cached searches and
    # suggestions, and GET /orders/{id}, before the documented routes (and the bench's
    # baseline)
    install_thin_routes(
        app,
        [
            *product_read_routes(bench_routes=settings.bench_routes),
            *product_list_routes(),
            *search_read_routes(),
            *order_read_routes(),
        ],
    )
    return app


def _install_offline_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-bundle package: the docs work with no internet."""
    app.mount("/static/swagger", StaticFiles(directory=str(swagger_ui_path)), name="swagger")

    @app.get("/docs", include_in_schema=False)
    async def swagger_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="polyshop API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )


def _install_request_metrics(app: FastAPI) -> None:
    app.add_middleware(RequestMetricsMiddleware)


class RequestMetricsMiddleware:
    """Latency and count per route template (pure ASGI: no per-request task overhead)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._latencies: dict[tuple[str, str], Any] = {}
        self._counts: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self._latency(method, route).observe(time.perf_counter() - started)
            self._count(method, route, status).inc()

    # The labelled children, looked up once per label set: `.labels()` validates and
    # joins the labels on every call (1 % of a cached read's samples). Bounded as the
    # metric's own label sets are (route templates, methods, statuses).
    def _latency(self, method: str, route: str) -> Any:
        child = self._latencies.get((method, route))
        if child is None:
            child = self._latencies[(method, route)] = HTTP_LATENCY.labels(method, route)
        return child

    def _count(self, method: str, route: str, status: int) -> Any:
        child = self._counts.get((method, route, status))
        if child is None:
            child = HTTP_REQUESTS.labels(method, route, str(status))
            self._counts[(method, route, status)] = child
        return child
