"""`polyshop search reindex` and the reconcile job against real Postgres and OpenSearch."""

from __future__ import annotations

import asyncio
import random

import pytest

from app.relay import Relay
from app.search_worker import reconcile_once
from app.stores import Stores
from search.index_admin import alias_name, ensure_alias
from search.reconcile import reconcile
from search.reindex import ReindexInProgress, reindex
from search.sync import bulk_operations, read_rows
from storage import locks
from tests.support.search import (
    ON_EACH_ENGINE,
    consumer_for,
    delete_product,
    drain,
    index_versions,
    insert_product,
    pending,
    pg_versions,
    update_product,
)

pytestmark = ON_EACH_ENGINE


async def test_reindex_under_concurrent_writes_loses_nothing(stores: Stores) -> None:
    prefix = stores.settings.search_index_prefix
    alias = alias_name(prefix)
    async with stores.pg.connection() as conn:
        ids = [await insert_product(conn, price_minor=i) for i in range(400)]
    await drain(stores, consumer_for(stores))
    old = await stores.search.alias_targets(alias)

    # The live relay keeps applying events (to the OLD index until the swap) while a
    # writer inserts, updates and deletes products during the whole rebuild.
    relay = Relay(stores, [consumer_for(stores)])
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stop))
    writes = 0

    async def writer() -> None:
        nonlocal writes
        rng = random.Random(11)
        async with stores.pg.connection() as conn:
            while not stop.is_set():
                roll = rng.random()
                if roll < 0.3:
                    ids.append(await insert_product(conn, price_minor=rng.randint(1, 10**6)))
                elif roll < 0.4 and len(ids) > 50:
                    await delete_product(conn, ids.pop(rng.randrange(len(ids))))
                else:
                    await update_product(conn, rng.choice(ids), price_minor=rng.randint(1, 10**6))
                writes += 1
                await asyncio.sleep(0.002)

    writer_task = asyncio.create_task(writer())
    try:
        await asyncio.sleep(0.3)
        report = await reindex(stores.pg, stores.search, prefix, batch_size=100)
        await asyncio.sleep(0.3)  # writes keep going after the swap
    finally:
        stop.set()
        await asyncio.wait_for(writer_task, 10)
        await asyncio.wait_for(relay_task, 10)
    await drain(stores, consumer_for(stores))
    assert await pending(stores) == 0

    assert writes > 50
    assert await stores.search.alias_targets(alias) == [report.index]
    assert report.previous == old and report.index not in old
    assert await stores.search.indices_matching(f"{alias}-*") == [report.index]
    assert await index_versions(stores) == await pg_versions(stores)
    print(f"reindex: {report}; concurrent writes: {writes}")


async def test_first_reindex_creates_the_alias(stores: Stores) -> None:
    async with stores.pg.connection() as conn:
        for i in range(5):
            await insert_product(conn, name=f"Thing {i}")
        pid = await insert_product(conn, name="Gone")
        await delete_product(conn, pid)
    report = await reindex(stores.pg, stores.search, stores.settings.search_index_prefix)
    assert report.previous == [] and report.loaded == 5
    assert await index_versions(stores) == await pg_versions(stores)


async def test_reconcile_finds_and_repairs_every_kind_of_drift(stores: Stores) -> None:
    prefix = stores.settings.search_index_prefix
    alias = await ensure_alias(stores.search, stores.pg, prefix)
    async with stores.pg.connection() as conn:
        ids = [await insert_product(conn, name=f"Item {i}") for i in range(30)]
    await drain(stores, consumer_for(stores))
    assert await index_versions(stores) == await pg_versions(stores)

    async with stores.pg.connection() as conn:
        # missing: a product whose event was lost
        await insert_product(conn, emit=False, name="Never indexed")
        # stale: a change whose event never reached the index
        await update_product(conn, ids[1], emit=False, name="Renamed without event")
        # extra: a document the index should not have (its row was removed)
        ghost = await read_rows(conn, [ids[2]])
        ghost[0]["id"] = 10_000_000
        await stores.search.bulk(bulk_operations(alias, ghost))
        # extra: a soft delete whose event was lost
        await conn.execute(
            "UPDATE products SET deleted_at = now(), version = version + 1 WHERE id = %s",
            (ids[3],),
        )
        await conn.commit()

    report = await reconcile(stores.pg, stores.search, prefix, batch_size=7)
    assert (report.missing, report.stale, report.extra) == (1, 1, 2)
    assert report.checked == 30
    assert await index_versions(stores) == await pg_versions(stores)

    again = await reconcile_once(stores)  # the worker's path: metrics exported
    assert again is not None and again.drift == 0
    from app.metrics import SEARCH_DRIFT

    assert SEARCH_DRIFT.labels("missing")._value.get() == 0


async def test_a_second_reindex_of_the_same_alias_is_refused(stores: Stores) -> None:
    prefix = stores.settings.search_index_prefix
    key = f"search-reindex:{alias_name(prefix)}"
    async with stores.pg.connection() as conn:
        assert await locks.try_session_lock(conn, key)
        await conn.commit()
        try:
            with pytest.raises(ReindexInProgress):
                await reindex(stores.pg, stores.search, prefix)
        finally:
            await locks.session_unlock(conn, key)
            await conn.commit()
    report = await reindex(stores.pg, stores.search, prefix)  # free again
    assert await stores.search.alias_targets(alias_name(prefix)) == [report.index]


async def test_worker_registers_the_consumer_and_a_running_reconcile_task(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import search_worker
    from app.metrics import SEARCH_RECONCILE_RUNS
    from app.worker_wiring import build_worker

    plan = build_worker(stores)
    assert "search" in [consumer.name for consumer in plan.consumers]
    assert "search-reconcile" in plan.tasks
    async with stores.pg.connection() as conn:
        await insert_product(conn, emit=False, name="Only reconcile can index me")
    monkeypatch.setattr(search_worker, "RECONCILE_INTERVAL_S", 0.05)
    await ensure_alias(stores.search, stores.pg, stores.settings.search_index_prefix)
    runs = SEARCH_RECONCILE_RUNS._value.get()
    stop = asyncio.Event()
    running = asyncio.create_task(search_worker.reconcile_task(stores, stop))
    for _ in range(200):
        if SEARCH_RECONCILE_RUNS._value.get() > runs:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert SEARCH_RECONCILE_RUNS._value.get() > runs
    assert await index_versions(stores) == await pg_versions(stores) != {}
