"""The authenticated hot read `GET /orders/{id}` (issue 19) against real Postgres and
Redis: the thin route (app/routes/order_read.py) answers what the documented FastAPI
route answers, byte for byte, errors included; with the limiter on, the order's cached
bytes come with the limiter's script; and an order read right after it is placed or
moved along shows the change, on every replica."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.routes.thin import is_thin
from app.settings import Settings
from app.stores import Stores
from tests.integration.test_cache_hot_read import count_mgets
from tests.support.auth import bearer

# the generation is re-read from Postgres (its own way, not prefetched) at most every
# this long: longer than any test here, also on a loaded machine
STEADY: dict[str, Any] = {"cache_generation_check_s": 600.0}
# what a client sees of an answer besides its bytes (not the request id, new each time)
COMPARED = ("content-type", "content-length", "www-authenticate", "retry-after", "allow")


@contextlib.asynccontextmanager
async def api(
    settings: Settings, *, thin: bool = True, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The app; `thin=False`: the same app without its thin routes (the FastAPI routes
    answer every read)."""
    app = create_app(settings.model_copy(update=overrides))
    if not thin:
        app.router.routes[:] = [r for r in app.router.routes if not is_thin(r)]
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as c:
            yield c, app


async def new_product(stores: Stores) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO products (sku, name, price_minor, currency, stock)"
            " VALUES (%s, 'Chair', 1999, 'USD', 100) RETURNING id",
            (f"SKU-{uuid.uuid4().hex[:8]}",),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def placed(c: httpx.AsyncClient, auth: dict[str, str], product_id: int) -> httpx.Response:
    response = await c.post(
        "/orders",
        json={"items": [{"product_id": product_id, "quantity": 1}]},
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    return response


async def place(c: httpx.AsyncClient, auth: dict[str, str], product_id: int) -> dict[str, Any]:
    order: dict[str, Any] = (await placed(c, auth, product_id)).json()
    return order


def seen(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {name: response.headers[name] for name in COMPARED if name in response.headers}
    return response.status_code, response.content, headers


async def test_the_thin_route_answers_as_the_documented_one(
    settings: Settings, stores: Stores
) -> None:
    product = await new_product(stores)
    owner, other = await bearer(stores, "customer"), await bearer(stores, "customer")
    warehouse, admin = await bearer(stores, "warehouse"), await bearer(stores, "admin")
    async with api(settings) as (c, _):
        created = await placed(c, owner, product)
    oid = created.json()["id"]
    callers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer psk_nope"},
        {"Authorization": "Basic x"},
        {"Authorization": "bearer " + owner["Authorization"].split()[1]},  # any case
        owner,
        other,
        warehouse,
        admin,
    ]
    paths = [f"/orders/{oid}", f"/orders/00{oid}", f"/orders/{2**62}", "/orders/0"]
    paths += ["/orders/abc", f"/orders/{2**63}", f"/orders/{oid}/"]
    answers: dict[bool, list[tuple[int, bytes, dict[str, str]]]] = {}
    for thin in (True, False):
        async with api(settings, thin=thin) as (c, _):
            answers[thin] = [
                seen(await c.get(path, headers=caller)) for path in paths for caller in callers
            ]
            answers[thin].append(seen(await c.head(f"/orders/{oid}", headers=owner)))
    assert answers[True] == answers[False]
    statuses = {status for status, _, _ in answers[True]}
    assert {200, 401, 404, 405, 422} <= statuses
    ok = answers[True][paths.index(f"/orders/{oid}") * len(callers) + callers.index(owner)]
    assert ok[0] == 200 and ok[2]["content-type"] == "application/json"
    assert ok[1] == created.content  # the bytes POST /orders answered


async def test_a_cached_order_read_with_the_limiter_on_makes_no_mget_of_its_own(
    settings: Settings, stores: Stores
) -> None:
    product = await new_product(stores)
    owner = await bearer(stores, "customer")
    async with api(settings, rate_limit_enabled=True, **STEADY) as (c, app):
        oid = (await place(c, owner, product))["id"]
        for _ in range(2):  # the cache filled, its breaker made
            assert (await c.get(f"/orders/{oid}", headers=owner)).status_code == 200
        # the order cache shares the stores' Redis client: every MGET is counted
        assert app.state.stores.order_cache.redis is app.state.stores.product_cache.redis
        calls = count_mgets(app)
        answers = [await c.get(f"/orders/{oid}", headers=owner) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.content for a in answers}) == 1
    assert calls[0] == 0
    assert all("ratelimit-remaining" in a.headers for a in answers)


async def test_a_cached_order_is_read_by_its_owner_only(settings: Settings, stores: Stores) -> None:
    """Authorization holds on a cache hit: the cached bytes are shared, the check is not."""
    product = await new_product(stores)
    owner, other = await bearer(stores, "customer"), await bearer(stores, "customer")
    warehouse, admin = await bearer(stores, "warehouse"), await bearer(stores, "admin")
    for limiter in (True, False):
        async with api(settings, rate_limit_enabled=limiter, **STEADY) as (c, _):
            oid = (await place(c, owner, product))["id"]
            for _ in range(3):  # a miss, then hits
                for caller in (owner, warehouse, admin):
                    assert (await c.get(f"/orders/{oid}", headers=caller)).status_code == 200
                refused = await c.get(f"/orders/{oid}", headers=other)
                assert refused.status_code == 404, limiter
                assert refused.json()["detail"] == f"no order {oid}"


async def test_every_replica_reads_an_order_change_at_once(
    settings: Settings, stores: Stores
) -> None:
    """Read-your-writes: placed, paid, shipped, or cancelled on one replica, read on
    another right after, with both caches warm (each read a hit before the change)."""
    product = await new_product(stores)
    owner, warehouse = await bearer(stores, "customer"), await bearer(stores, "warehouse")
    for limiter in (True, False):
        async with (
            api(settings, rate_limit_enabled=limiter, **STEADY) as (a, _),
            api(settings, rate_limit_enabled=limiter, **STEADY) as (b, _),
        ):
            shipped = await place(a, owner, product)
            cancelled = await place(b, owner, product)
            for reader in (a, b):
                for oid in (shipped["id"], cancelled["id"]):
                    first = await reader.get(f"/orders/{oid}", headers=owner)
                    assert first.json()["status"] == "pending"
            steps = [
                (a, shipped["id"], "post", "paid"),
                (b, shipped["id"], "post", "shipped"),
                (a, cancelled["id"], "delete", "cancelled"),
            ]
            for writer, oid, how, status in steps:
                for _ in range(2):  # warm on both replicas
                    for reader in (a, b):
                        warm = await reader.get(f"/orders/{oid}", headers=owner)
                        assert warm.status_code == 200
                if how == "post":
                    changed = await writer.post(
                        f"/orders/{oid}/transitions", json={"status": status}, headers=warehouse
                    )
                else:
                    changed = await writer.delete(f"/orders/{oid}", headers=owner)
                assert changed.status_code == 200, changed.text
                for reader in (a, b):
                    read = await reader.get(f"/orders/{oid}", headers=owner)
                    assert read.json()["status"] == status, (limiter, status)
                    assert read.json() == changed.json()
