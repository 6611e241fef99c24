"""Admin: ETL runs (run now, live status), the status page, API keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response
from prometheus_client import REGISTRY

from etl import requests
from etl.tables import CONFIGURATIONS
from storage import api_keys, blobs, cache, postgres
from storage.postgres import read_connection
from web.backend import WebStores, search_index
from web.context import PageDep
from web.errors import PageRoute

router = APIRouter(route_class=PageRoute)


# --- ETL ---------------------------------------------------------------------------------


async def _runs(stores: WebStores) -> tuple[bool, list[dict[str, Any]]]:
    async with read_connection(stores.pg) as conn:
        return await requests.recent_runs(conn, 20)


@router.get("/staff/etl")
async def etl_page(page: PageDep) -> Response:
    page.require("admin")
    running, runs = await _runs(page.stores)
    return page.render("staff/etl.html", {"running": running, "runs": runs})


@router.get("/staff/etl/runs")
async def etl_fragment(page: PageDep) -> Response:
    """The runs table alone, polled by the page while a run is on."""
    page.require("admin")
    running, runs = await _runs(page.stores)
    return page.render("staff/_etl_runs.html", {"running": running, "runs": runs})


@router.post("/staff/etl/run")
async def etl_run_now(page: PageDep) -> Response:
    await page.form()
    page.require("admin")
    # like POST /etl/runs: a queued run that a worker starts (no DuckDB in the API)
    options = {"configuration": CONFIGURATIONS[page.stores.settings.etl_tables].name}
    try:
        async with page.stores.pg.connection() as conn, conn.transaction():
            await requests.request_run(conn, "incremental", options)
    except requests.AlreadyRequested:
        return RedirectResponse("/staff/etl?busy=1", 303)
    return RedirectResponse("/staff/etl", 303)


# --- status ------------------------------------------------------------------------------


def _checks(stores: WebStores) -> dict[str, Callable[[], Awaitable[None]]]:
    """The checks of /readyz, one per store."""
    return {
        "postgres": lambda: postgres.ping(stores.pg),
        "redis": lambda: cache.ping(stores.redis),
        "search": lambda: stores.search.ping(search_index(stores)),
        "blobs": lambda: blobs.ping(stores.blobs, stores.settings.s3_bucket),
        "analytics": stores.analytics.ping,
    }


async def _check(check: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), 2.0)
        ok, reason = True, "ok"
    except Exception as exc:  # any failure is "not ready"; the reason is shown
        ok, reason = False, (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return {"ok": ok, "reason": reason, "ms": round((time.perf_counter() - started) * 1000)}


def _metrics() -> list[tuple[str, str]]:
    """A few figures from this process's Prometheus registry."""
    totals: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            name = sample.name
            if name == "polyshop_http_requests_total":
                cls = sample.labels.get("status", "?")[:1] + "xx"
                totals[f"HTTP requests {cls}"] = (
                    totals.get(f"HTTP requests {cls}", 0) + sample.value
                )
            elif name == "polyshop_cache_requests_total":
                key = f"product cache {sample.labels.get('result', '?')}"
                totals[key] = totals.get(key, 0) + sample.value
            elif name in ("polyshop_etl_data_age_seconds", "polyshop_outbox_backlog"):
                label = ",".join(sample.labels.values())
                totals[name.removeprefix("polyshop_") + (f" ({label})" if label else "")] = (
                    sample.value
                )
    return [(k, f"{v:,.0f}") for k, v in sorted(totals.items())]


@router.get("/staff/status")
async def status_page(page: PageDep) -> Response:
    page.require("admin")
    checks = _checks(page.stores)
    results = await asyncio.gather(*(_check(c) for c in checks.values()))
    return page.render(
        "staff/status.html",
        {"stores": dict(zip(checks, results, strict=True)), "metrics": _metrics()},
    )


# --- API keys ----------------------------------------------------------------------------


async def _keys(stores: WebStores) -> list[dict[str, Any]]:
    async with read_connection(stores.pg) as conn:
        cur = await conn.execute(
            "SELECT id, prefix, role, customer_id, name, created_at, revoked_at"
            " FROM api_keys ORDER BY id DESC LIMIT 200"
        )
        return await cur.fetchall()


@router.get("/staff/keys")
async def keys_page(page: PageDep) -> Response:
    page.require("admin")
    return page.render("staff/keys.html", {"keys": await _keys(page.stores), "errors": {}})


@router.post("/staff/keys")
async def create_key(page: PageDep) -> Response:
    form = await page.form()
    page.require("admin")
    role = str(form.get("role") or "")
    name = str(form.get("name") or "").strip()
    raw_customer = str(form.get("customer_id") or "").strip()
    errors: dict[str, str] = {}
    if role not in api_keys.ROLES:
        errors["role"] = f"one of {', '.join(api_keys.ROLES)}"
    if len(name) > 200 or "\x00" in name:
        errors["name"] = "at most 200 characters"
    customer_id = int(raw_customer) if raw_customer.isdigit() and len(raw_customer) < 19 else None
    if role == "customer" and customer_id is None:
        errors["customer_id"] = "a customer key needs the customer's id"
    if role != "customer" and raw_customer:
        errors["customer_id"] = "only customer keys belong to a customer"
    created = None
    if not errors:
        async with page.stores.pg.connection() as conn:
            if customer_id is not None:
                cur = await conn.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,))
                if await cur.fetchone() is None:
                    errors["customer_id"] = "no such customer"
            if not errors:
                created = await api_keys.create_key(
                    conn,
                    pepper=page.stores.settings.api_key_pepper.get_secret_value(),
                    role=role,  # type: ignore[arg-type]
                    customer_id=customer_id,
                    name=name,
                )
    # the new key is shown once, in this answer (no-store), as `polyshop keys create` does
    return page.render(
        "staff/keys.html",
        {
            "keys": await _keys(page.stores),
            "errors": errors,
            "created": created,
            "v": {"role": role, "name": name, "customer_id": raw_customer},
        },
        status=422 if errors else 201,
    )


@router.post("/staff/keys/{key_id}/revoke")
async def revoke_key(key_id: int, page: PageDep) -> Response:
    await page.form()
    session = page.require("admin")
    if key_id == session.key_id:
        raise HTTPException(409, "this is the key of your own session")
    async with page.stores.pg.connection() as conn:
        await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (key_id,),
        )
    return RedirectResponse("/staff/keys", 303)
