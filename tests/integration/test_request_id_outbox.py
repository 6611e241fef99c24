"""A request's id follows it into the outbox events it writes (and so into the worker)."""

from __future__ import annotations

import httpx

from app.stores import Stores
from tests.support.auth import bearer


async def test_events_carry_the_request_id(client: httpx.AsyncClient, stores: Stores) -> None:
    admin = await bearer(stores, "admin")
    body = {"sku": "RID-1", "name": "Lamp", "price": "19.99", "currency": "USD", "stock": 3}
    created = await client.post(
        "/products", json=body, headers={**admin, "X-Request-ID": "trace-abc-12345"}
    )
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == "trace-abc-12345"
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT payload FROM outbox WHERE aggregate = 'product'")
        payloads = [r["payload"] for r in await cur.fetchall()]
    assert payloads == [{"request_id": "trace-abc-12345"}]


async def test_events_written_outside_a_request_carry_none(stores: Stores) -> None:
    from storage import outbox

    async with stores.pg.connection() as conn:
        await outbox.emit(conn, aggregate="product", aggregate_id=1, event_type="x", version=1)
        cur = await conn.execute("SELECT payload FROM outbox")
        assert [r["payload"] for r in await cur.fetchall()] == [{}]
