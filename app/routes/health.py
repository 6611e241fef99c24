"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from analytics.duck import AnalyticsStore
from analytics.lake import LakeStore
from app.deps import StoresDep
from app.metrics import STORE_UP
from app.stores import Stores
from jobs import admin as jobs_admin
from search.index_admin import alias_name
from storage import blobs, cache, postgres

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 2.0


def _checks(stores: Stores) -> dict[str, Callable[[], Awaitable[None]]]:
    analytics: AnalyticsStore | LakeStore = stores.analytics
    return {
        "postgres": lambda: postgres.ping(stores.pg),
        "redis": lambda: cache.ping(stores.redis),
        "search": lambda: stores.search.ping(alias_name(stores.settings.search_index_prefix)),
        "blobs": lambda: blobs.ping(stores.blobs, stores.settings.s3_bucket),
        "analytics": analytics.ping,
        "broker": lambda: jobs_admin.ping(stores.settings.broker_url.get_secret_value()),
    }


async def _run_check(check: Callable[[], Awaitable[None]]) -> tuple[bool, str, float]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return False, reason, time.perf_counter() - started
    return True, "ok", time.perf_counter() - started


@router.get("/healthz", response_class=PlainTextResponse, summary="The process is alive")
async def healthz() -> str:
    return "ok\n"


@router.get(
    "/readyz",
    response_class=PlainTextResponse,
    summary="Every store answers",
    responses={503: {"description": "At least one store is down; each line names one store"}},
)
async def readyz(stores: StoresDep) -> Response:
    checks = _checks(stores)
    results = await asyncio.gather(*(_run_check(c) for c in checks.values()))
    lines = []
    all_ok = True
    for name, (ok, reason, took) in zip(checks, results, strict=True):
        STORE_UP.labels(name).set(1 if ok else 0)
        all_ok &= ok
        lines.append(f"{name}: {'ok' if ok else 'FAIL ' + reason} ({took * 1000:.0f} ms)")
    return PlainTextResponse("\n".join(lines) + "\n", status_code=200 if all_ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
