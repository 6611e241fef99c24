"""Really stops the dev stack's engine, each in turn (guarantees 2 and 8): while it is down, search
answers 503 and 1,000 writes still commit; once it is back the index converges to
Postgres exactly (same ids, same versions).

The engine restart takes ~15-30 s; test_search_sync.py covers the same convergence with
a TCP proxy that cuts the connection, which is quicker and needs no dev stack."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from app.relay import Relay
from app.settings import Settings
from app.stores import open_stores
from tests.support.search import (
    ON_EACH_ENGINE,
    consumer_for,
    delete_product,
    index_versions,
    insert_product,
    pending,
    pg_versions,
    update_product,
)

pytestmark = ON_EACH_ENGINE


def _devstack_runs_the_engine(settings: Settings) -> bool:
    """The test's engine is the native stack's node of that engine (it is stopped here)."""
    try:
        import devstack

        return bool(devstack.is_up()) and devstack.urls()[settings.search_engine] == (
            settings.search_url
        )
    except Exception:
        return False


@pytest.mark.stack_exclusive
async def test_fault_engine_stopped_during_1000_writes(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    if not _devstack_runs_the_engine(settings):
        pytest.skip("needs the native dev stack's node of this engine (stopped and restarted)")
    import devstack

    service = settings.search_engine  # the devstack program is named after the engine

    fast = settings.model_copy(update={"outbox_backoff_s": 0.05, "outbox_max_attempts": 1000})
    async with open_stores(fast, application_name="polyshop-test") as stores:
        relay = Relay(stores, [consumer_for(stores)])
        rng = random.Random(5)
        async with stores.pg.connection() as conn:
            ids = [await insert_product(conn, name=f"Lamp {i}") for i in range(50)]
        await relay.drain()
        assert len(await index_versions(stores)) == 50

        await asyncio.to_thread(devstack.stop_service, service)
        try:
            down = await client.get("/search/products", params={"q": "lamp"})
            async with stores.pg.connection() as conn:
                for _ in range(1000):
                    roll = rng.random()
                    if roll < 0.25:
                        ids.append(await insert_product(conn, name="Lamp new"))
                    elif roll < 0.35 and len(ids) > 10:
                        await delete_product(conn, ids.pop(rng.randrange(len(ids))))
                    else:
                        await update_product(
                            conn, rng.choice(ids), price_minor=rng.randint(1, 10**6)
                        )
            await relay.drain()  # fails: the events stay queued with backoff
            still_pending = await pending(stores)
        finally:
            await asyncio.to_thread(devstack.start_service, service)
        assert down.status_code == 503, down.text
        # the same answer whichever engine is down: nothing engine-specific leaks out
        assert down.headers["retry-after"] == "5"
        body = down.json()
        assert (body["status"], body["title"], body["store"]) == (
            503,
            "Service Unavailable",
            "search",
        ), body
        assert body["detail"] == "search is unavailable, retry later"
        assert still_pending > 0

        deadline = time.monotonic() + 120
        while await pending(stores) and time.monotonic() < deadline:
            await relay.drain()
            await asyncio.sleep(0.2)
        assert await pending(stores) == 0
        assert await index_versions(stores) == await pg_versions(stores)
