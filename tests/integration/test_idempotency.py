"""Stripe-style Idempotency-Key on POST /orders, and stock under concurrent checkout."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from tests.integration.test_orders import insert_product, product_row
from tests.support.auth import bearer


@contextlib.asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One more app instance on the same schema, as a second replica would be."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as c:
            yield c


async def count(stores: Stores, table: str) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) AS n FROM {table}")
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def test_fifty_concurrent_retries_on_two_replicas_make_one_order(
    settings: Settings, stores: Stores
) -> None:
    product = await insert_product(stores, stock=100)
    headers = {**await bearer(stores, "customer"), "Idempotency-Key": uuid.uuid4().hex}
    body = {"items": [{"product_id": product, "quantity": 3}]}

    async with replica(settings) as one, replica(settings) as two:
        responses = await asyncio.gather(
            *(
                (one if i % 2 else two).post("/orders", json=body, headers=headers)
                for i in range(50)
            )
        )

    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1  # byte-identical
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 49
    assert await count(stores, "orders") == 1
    assert (await product_row(stores, product))["stock"] == 97


async def test_a_later_retry_replays_the_stored_bytes(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=5)
    headers = {**await bearer(stores, "customer"), "Idempotency-Key": "order-attempt-1"}
    body = {"items": [{"product_id": product, "quantity": 1}]}
    first = await client.post("/orders", json=body, headers=headers)
    # the same request, written differently, is the same request
    retry = await client.post(
        "/orders",
        content=b'{ "items" : [ {"quantity": 1, "product_id": %d} ] }' % product,
        headers={**headers, "content-type": "application/json"},
    )
    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count(stores, "orders") == 1


async def test_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=5)
    headers = {**await bearer(stores, "customer"), "Idempotency-Key": "k1"}
    first = await client.post(
        "/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=headers
    )
    assert first.status_code == 201
    other = await client.post(
        "/orders", json={"items": [{"product_id": product, "quantity": 2}]}, headers=headers
    )
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["location"]) for e in other.json()["errors"]] == [
        ("Idempotency-Key", "header")
    ]
    assert await count(stores, "orders") == 1
    assert (await product_row(stores, product))["stock"] == 4


async def test_keys_are_scoped_to_the_customer(client: httpx.AsyncClient, stores: Stores) -> None:
    product = await insert_product(stores, stock=5)
    body = {"items": [{"product_id": product, "quantity": 1}]}
    for _ in range(2):
        headers = {**await bearer(stores, "customer"), "Idempotency-Key": "same-key"}
        assert (await client.post("/orders", json=body, headers=headers)).status_code == 201
    assert await count(stores, "orders") == 2


async def test_a_refusal_is_replayed_too(client: httpx.AsyncClient, stores: Stores) -> None:
    """Stripe semantics: the first outcome of a key is its outcome, a 409 included."""
    product = await insert_product(stores, stock=1)
    headers = {**await bearer(stores, "customer"), "Idempotency-Key": "k-409"}
    body = {"items": [{"product_id": product, "quantity": 2}]}
    first = await client.post("/orders", json=body, headers=headers)
    assert first.status_code == 409
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE products SET stock = 10 WHERE id = %s", (product,))
    retry = await client.post("/orders", json=body, headers=headers)
    assert retry.status_code == 409
    assert retry.content == first.content
    assert await count(stores, "orders") == 0


async def test_a_validation_error_does_not_burn_the_key(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=5)
    headers = {**await bearer(stores, "customer"), "Idempotency-Key": "k-422"}
    bad = await client.post(
        "/orders", json={"items": [{"product_id": product, "quantity": 0}]}, headers=headers
    )
    assert bad.status_code == 422
    good = await client.post(
        "/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=headers
    )
    assert good.status_code == 201


async def test_fifty_buyers_of_ten_in_stock(client: httpx.AsyncClient, stores: Stores) -> None:
    product = await insert_product(stores, stock=10)
    buyers = [await bearer(stores, "customer") for _ in range(50)]
    body = {"items": [{"product_id": product, "quantity": 1}]}

    responses = await asyncio.gather(
        *(
            client.post("/orders", json=body, headers={**auth, "Idempotency-Key": uuid.uuid4().hex})
            for auth in buyers
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [409] * 40
    assert all(r.json()["product_id"] == product for r in responses if r.status_code == 409)
    assert await product_row(stores, product) == {"stock": 0, "version": 11}
    assert await count(stores, "orders") == 10
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(quantity), 0) AS n FROM order_lines WHERE product_id = %s",
            (product,),
        )
        assert await cur.fetchone() == {"n": 10}


async def _wait_for_pid_blocked_by(stores: Stores, blocker: int) -> int:
    """The backend that waits for a lock `blocker` holds (polls; no timing assert)."""
    for _ in range(600):
        async with stores.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (blocker,),
            )
            row = await cur.fetchone()
        if row is not None:
            return int(row["pid"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing got blocked by backend {blocker}")


async def test_a_retry_while_the_first_is_in_flight_waits_and_replays(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    """Hold the first request mid-transaction (its product row is locked elsewhere),
    send the retry, and only then let the first one finish."""
    product = await insert_product(stores, stock=5)
    headers = {**await bearer(stores, "customer"), "Idempotency-Key": "in-flight"}
    body = {"items": [{"product_id": product, "quantity": 1}]}

    async with stores.pg.connection() as locker:
        await locker.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", (product,))
        cur = await locker.execute("SELECT pg_backend_pid() AS pid")
        row = await cur.fetchone()
        assert row is not None
        first = asyncio.create_task(client.post("/orders", json=body, headers=headers))
        first_pid = await _wait_for_pid_blocked_by(stores, row["pid"])
        retry = asyncio.create_task(client.post("/orders", json=body, headers=headers))
        await _wait_for_pid_blocked_by(stores, first_pid)  # the retry waits for the first
        assert not first.done() and not retry.done()
        await locker.commit()  # release the product row

    a, b = await first, await retry
    assert a.status_code == b.status_code == 201
    assert a.content == b.content
    assert b.headers["idempotent-replayed"] == "true"
    assert await count(stores, "orders") == 1
    assert (await product_row(stores, product))["stock"] == 4
