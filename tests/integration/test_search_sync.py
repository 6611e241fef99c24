"""The "search" outbox consumer against real Postgres and OpenSearch."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from app.relay import Relay
from app.settings import Settings
from app.stores import Stores, open_stores
from search.consumer import SearchIndexConsumer
from search.dead_letters import list_dead_letters, replay
from search.engine import create_search_engine
from search.index_admin import alias_name
from search.sync import bulk_operations, read_rows
from storage import outbox
from tests.support.auth import bearer
from tests.support.search import (
    ON_EACH_ENGINE,
    consumer_for,
    delete_product,
    drain,
    index_versions,
    insert_product,
    pending,
    pg_versions,
    proxy_to,
    update_product,
)

pytestmark = ON_EACH_ENGINE


async def _doc(stores: Stores, product_id: int) -> dict[str, object] | None:
    index = alias_name(stores.settings.search_index_prefix)
    await stores.search.refresh(index)
    body = {"query": {"ids": {"values": [str(product_id)]}}, "version": True}
    hits = (await stores.search.search(index, body))["hits"]["hits"]
    return hits[0] if hits else None


async def test_upsert_update_and_delete_reach_the_index(stores: Stores) -> None:
    consumer = consumer_for(stores)
    async with stores.pg.connection() as conn:
        pid = await insert_product(conn, name="Walnut Desk")
    assert await drain(stores, consumer) == 1
    doc = await _doc(stores, pid)
    assert doc is not None and doc["_source"]["name"] == "Walnut Desk"  # type: ignore[index]

    async with stores.pg.connection() as conn:
        v2 = await update_product(conn, pid, name="Oak Desk")
    await drain(stores, consumer)
    doc = await _doc(stores, pid)
    assert doc is not None and doc["_version"] == v2
    assert doc["_source"]["name"] == "Oak Desk"  # type: ignore[index]

    async with stores.pg.connection() as conn:
        await delete_product(conn, pid)
    await drain(stores, consumer)
    assert await _doc(stores, pid) is None


async def test_draft_products_are_not_searchable(stores: Stores) -> None:
    consumer = consumer_for(stores)
    async with stores.pg.connection() as conn:
        pid = await insert_product(conn, status="draft")
    await drain(stores, consumer)
    assert await _doc(stores, pid) is None
    async with stores.pg.connection() as conn:
        await update_product(conn, pid, status="active")
    await drain(stores, consumer)
    assert await _doc(stores, pid) is not None


async def test_replayed_and_reordered_events_never_regress_a_document(stores: Stores) -> None:
    consumer = consumer_for(stores)
    async with stores.pg.connection() as conn:
        pid = await insert_product(conn, name="v1 name", price_minor=100)
        cur = await conn.execute("SELECT id FROM outbox")
        await update_product(conn, pid, name="v2 name", price_minor=200)
        old_rows = await read_rows(conn, [pid])  # a snapshot at version 2
        v3 = await update_product(conn, pid, name="v3 name", price_minor=300)
        async with conn.transaction():
            events = await outbox.claim(conn, "search", 100)
    assert [e.version for e in events] == [1, 2, 3]
    assert cur is not None

    # reordered and duplicated batches, as an at-least-once relay may deliver them
    for batch in ([events[2]], [events[0]], [events[1], events[0]], events[::-1], events):
        await consumer.apply(batch)
    doc = await _doc(stores, pid)
    assert doc is not None and doc["_version"] == v3
    assert doc["_source"]["name"] == "v3 name"  # type: ignore[index]

    # a writer holding an old snapshot of the row is refused by the engine (409)
    index = alias_name(stores.settings.search_index_prefix)
    results = await stores.search.bulk(bulk_operations(index, old_rows))
    assert [r.status for r in results] == [409]
    doc = await _doc(stores, pid)
    assert doc is not None and doc["_source"]["price_minor"] == 300  # type: ignore[index]


async def test_a_write_is_searchable_through_the_running_relay(
    settings: Settings, stores: Stores
) -> None:
    """Arrival through the real relay (LISTEN/NOTIFY wake-up); the lag is printed, not
    asserted (no timing asserts in tests; the benchmark reports the distribution)."""
    lags: list[float] = []
    consumer = SearchIndexConsumer(
        stores.pg, stores.search, settings.search_index_prefix, observe_lag=lags.append
    )
    relay = Relay(stores, [consumer])
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.wait_for(relay.listening.wait(), 10)
        index = alias_name(settings.search_index_prefix)
        measured = []
        for i in range(5):
            async with stores.pg.connection() as conn:
                pid = await insert_product(conn, name=f"Freshness probe {i}", sku=f"FRESH-{i}")
            committed = time.perf_counter()
            found = False
            while time.perf_counter() - committed < 10:
                try:
                    r = await stores.search.search(
                        index, {"query": {"term": {"sku": f"fresh-{i}"}}, "_source": False}
                    )
                    found = [h["_id"] for h in r["hits"]["hits"]] == [str(pid)]
                except Exception:
                    found = False  # the alias may not exist before the first event
                if found:
                    break
                await asyncio.sleep(0.02)
            assert found, f"product {pid} not searchable after 10 s"
            measured.append(time.perf_counter() - committed)
        print(f"commit-to-searchable: {[round(m, 3) for m in measured]} s; apply lag {lags}")
        assert len(lags) >= 5
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)


async def test_engine_down_during_1000_writes_then_back_converges_exactly(
    settings: Settings,
) -> None:
    """The engine is cut off (every connection refused, through a TCP proxy in front of
    OpenSearch) while 1,000 writes commit; the relay keeps failing and backing off; once
    the engine is reachable again the index equals Postgres: same ids, same versions."""
    fast = settings.model_copy(update={"outbox_backoff_s": 0.05, "outbox_max_attempts": 1000})
    async with (
        open_stores(fast, application_name="polyshop-test") as stores,
        proxy_to(fast.search_url) as proxy,
    ):
        engine = create_search_engine(
            settings.search_engine, f"http://127.0.0.1:{proxy.port}", timeout_s=2
        )
        try:
            relay = Relay(stores, [consumer_for(stores, engine)])
            rng = random.Random(7)
            async with stores.pg.connection() as conn:
                ids = [await insert_product(conn, price_minor=100 + i) for i in range(50)]
            await relay.drain()
            assert len(await index_versions(stores)) == 50

            await proxy.cut()
            writes = 0
            async with stores.pg.connection() as conn:
                while writes < 1000:
                    roll = rng.random()
                    if roll < 0.25:
                        ids.append(await insert_product(conn, price_minor=rng.randint(1, 10**6)))
                    elif roll < 0.35 and len(ids) > 10:
                        await delete_product(conn, ids.pop(rng.randrange(len(ids))))
                    else:
                        pid = rng.choice(ids)
                        await update_product(conn, pid, price_minor=rng.randint(1, 10**6))
                    writes += 1
                    if writes % 250 == 0:
                        await relay.drain()  # the relay keeps trying while the engine is down
            assert await pending(stores) > 0
            async with stores.pg.connection() as conn:
                assert await list_dead_letters(conn) == []

            await proxy.restore()
            deadline = time.monotonic() + 60
            while await pending(stores) and time.monotonic() < deadline:
                await relay.drain()
                await asyncio.sleep(0.1)
            assert await pending(stores) == 0
            expected = await pg_versions(stores)
            assert len(expected) > 50
            assert await index_versions(stores) == expected
        finally:
            await engine.close()


async def test_repeated_failure_dead_letters_then_replay_delivers(settings: Settings) -> None:
    strict = settings.model_copy(update={"outbox_backoff_s": 0.01, "outbox_max_attempts": 2})
    async with open_stores(strict, application_name="polyshop-test") as stores:
        dead_engine = create_search_engine(
            settings.search_engine, "http://127.0.0.1:1", timeout_s=1
        )
        try:
            async with stores.pg.connection() as conn:
                pid = await insert_product(conn, name="Dead letter lamp")
            relay = Relay(stores, [consumer_for(stores, dead_engine)])
            for _ in range(2):
                await relay.drain()
                await asyncio.sleep(0.05)
            async with stores.pg.connection() as conn:
                letters = await list_dead_letters(conn)
                assert [(d.aggregate_id, d.attempts) for d in letters] == [(pid, 2)]
                assert "search unavailable" in (letters[0].last_error or "")
                assert await replay(conn) == 1
                assert await list_dead_letters(conn) == []
            await drain(stores, consumer_for(stores))
            assert await index_versions(stores) == await pg_versions(stores)
            assert pid in await index_versions(stores)
        finally:
            await dead_engine.close()


async def test_products_api_writes_reach_search_through_the_registered_relay(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    """End to end with the other areas' code: POST/PATCH/DELETE /products, then the relay
    with every consumer of the worker's plan (cache + search), then GET /search."""
    from app.worker_wiring import build_consumers

    admin = await bearer(stores, "admin")
    created = await client.post(
        "/products",
        json={
            "sku": "E2E-1",
            "name": "Harbor Teak Bench",
            "description": "Outdoor seating",
            "brand": "Harbor",
            "category": "Garden/Benches",
            "price": "249.00",
            "currency": "USD",
            "stock": 4,
            "attributes": {"material": "teak"},
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    relay = Relay(stores, build_consumers(stores))

    async def found(q: str) -> list[dict[str, object]]:
        await relay.drain()
        await stores.search.refresh(alias_name(stores.settings.search_index_prefix))
        response = await client.get("/search/products", params={"q": q})
        assert response.status_code == 200, response.text
        hits: list[dict[str, object]] = response.json()["hits"]
        return hits

    hits = await found("teak bench")
    assert [(h["id"], h["price"], h["version"]) for h in hits] == [(pid, "249.00", 1)]

    patched = await client.patch(f"/products/{pid}", json={"price": "199.00"}, headers=admin)
    assert patched.status_code == 200, patched.text
    hits = await found("teak bench")
    assert [(h["price"], h["version"]) for h in hits] == [("199.00", 2)]

    deleted = await client.delete(f"/products/{pid}", headers=admin)
    assert deleted.status_code in (200, 204), deleted.text
    assert await found("teak bench") == []
