"""The outbox relay against real Postgres: at-least-once delivery with several relays,
backoff and dead letters, and the LISTEN/NOTIFY wake-up."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from app.relay import Relay
from app.settings import Settings
from app.stores import Stores, open_stores
from storage import outbox
from storage.outbox import OutboxEvent
from tests.support.isolation import isolated_settings, isolated_stores


class Recorder:
    """A consumer that records what it is given (named like a real one: the outbox fans
    each event out to the consumers listed in outbox_consumers)."""

    def __init__(self, name: str = "cache", fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.calls = 0
        self.seen: list[int] = []

    async def apply(self, events: Sequence[OutboxEvent]) -> None:
        self.calls += 1
        await asyncio.sleep(0)  # let the other relay run in between
        if self.fail:
            raise RuntimeError("search engine on fire")
        self.seen += [e.id for e in events]


@pytest.fixture
async def relay_stores(service_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Stores]:
    """Small batches, quick backoff, a poll so slow that only NOTIFY can wake the relay."""
    settings = isolated_settings(
        service_env,
        tmp_path,
        outbox_batch_size=5,
        outbox_backoff_s=1.0,
        outbox_max_attempts=3,
        outbox_poll_s=600,
    )
    async with isolated_stores(settings) as s, open_stores(s) as stores:
        yield stores


async def emit_events(stores: Stores, n: int, first_id: int = 1) -> list[int]:
    async with stores.pg.connection() as conn, conn.transaction():
        for i in range(n):
            await outbox.emit(
                conn,
                aggregate="product",
                aggregate_id=first_id + i,
                event_type="product.upserted",
                version=1,
            )
        cur = await conn.execute("SELECT id FROM outbox ORDER BY id")
        return [r["id"] for r in await cur.fetchall()]


async def pending(stores: Stores, consumer: str) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM outbox_pending WHERE consumer = %s", (consumer,)
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def test_two_relays_deliver_every_event_and_ack_all(relay_stores: Stores) -> None:
    ids = await emit_events(relay_stores, 40)
    one, two = Recorder(), Recorder()
    await Relay(relay_stores, [one]).report_backlog()
    assert REGISTRY.get_sample_value("polyshop_outbox_backlog", {"consumer": "cache"}) == 40
    relayed = REGISTRY.get_sample_value("polyshop_outbox_relayed_total", {"consumer": "cache"})
    acked = await asyncio.gather(
        Relay(relay_stores, [one]).drain(), Relay(relay_stores, [two]).drain()
    )
    assert sum(acked) >= 40
    assert sorted(set(one.seen) | set(two.seen)) == ids  # each at least once
    assert one.seen and two.seen  # SKIP LOCKED shared the work
    assert await pending(relay_stores, "cache") == 0
    assert await pending(relay_stores, "search") == 40  # another consumer's copy is untouched
    after = REGISTRY.get_sample_value("polyshop_outbox_relayed_total", {"consumer": "cache"})
    assert (after or 0) - (relayed or 0) == sum(acked)


async def test_failing_consumer_backs_off_then_dead_letters(relay_stores: Stores) -> None:
    await emit_events(relay_stores, 3)
    broken = Recorder("search", fail=True)
    relay = Relay(relay_stores, [broken])
    await relay.drain()
    assert broken.calls == 1
    await relay.drain()  # within the backoff: nothing is due, the consumer is not called
    assert broken.calls == 1
    async with relay_stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT attempts, last_error FROM outbox_pending WHERE consumer = 'search'"
        )
        rows = await cur.fetchall()
    assert [r["attempts"] for r in rows] == [1, 1, 1]
    assert "search engine on fire" in rows[0]["last_error"]

    for _ in range(200):  # attempts 2 and 3, after 2 s then 4 s of backoff
        if await pending(relay_stores, "search") == 0:
            break
        await asyncio.sleep(0.1)
        await relay.drain()
    assert broken.calls == 3
    async with relay_stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT attempts FROM outbox_dead_letters WHERE consumer = 'search' ORDER BY event_id"
        )
        assert [r["attempts"] for r in await cur.fetchall()] == [3, 3, 3]
    assert await pending(relay_stores, "cache") == 3  # the healthy consumer is unaffected


async def test_a_store_back_after_a_long_outage_is_retried_within_the_cap(
    relay_stores: Stores,
) -> None:
    """The retry delay doubles per attempt but never exceeds outbox_backoff_max_s: events
    that failed many times while their store was down (here: 20 attempts, an uncapped
    delay of 2^20 s) are retried within the cap once it is back."""
    stores = dataclasses.replace(
        relay_stores,
        settings=relay_stores.settings.model_copy(
            update={"outbox_max_attempts": 100, "outbox_backoff_max_s": 1.0}
        ),
    )
    await emit_events(stores, 3)
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE outbox_pending SET attempts = 20 WHERE consumer = 'search'")
    store = Recorder("search", fail=True)
    relay = Relay(stores, [store])
    await relay.drain()
    assert store.calls == 1
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT attempts, available_at <= now() + interval '1 second' AS within_cap"
            " FROM outbox_pending WHERE consumer = 'search'"
        )
        rows = await cur.fetchall()
    assert [(r["attempts"], r["within_cap"]) for r in rows] == [(21, True)] * 3

    store.fail = False  # the store is back
    for _ in range(100):
        if await pending(stores, "search") == 0:
            break
        await asyncio.sleep(0.1)
        await relay.drain()
    assert await pending(stores, "search") == 0
    assert store.calls == 2 and len(store.seen) == 3


async def test_listen_wakes_the_relay_without_polling(relay_stores: Stores) -> None:
    recorder = Recorder()
    relay = Relay(relay_stores, [recorder])
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.wait_for(relay.listening.wait(), 10)
        await asyncio.sleep(0.1)  # let the first drain (nothing to do) finish
        ids = await emit_events(relay_stores, 2)
        # The poll is 600 s: only the NOTIFY at commit can deliver these in time.
        for _ in range(100):
            if sorted(recorder.seen) == ids:
                break
            await asyncio.sleep(0.05)
        assert sorted(recorder.seen) == ids
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert task.done() and task.exception() is None


async def test_notify_of_another_schema_does_not_count(
    relay_stores: Stores, settings: Settings
) -> None:
    """Tests share one database: a NOTIFY from another schema must not wake this relay."""
    recorder = Recorder()
    relay = Relay(relay_stores, [recorder])
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.wait_for(relay.listening.wait(), 10)
        await asyncio.sleep(0.2)  # let the first rounds (nothing to do) finish
        rounds = relay.rounds
        async with open_stores(settings) as other:
            await emit_events(other, 1)
        await asyncio.sleep(0.3)
        assert relay.rounds == rounds
        await emit_events(relay_stores, 1)  # our own schema does wake it
        for _ in range(100):
            if recorder.seen:
                break
            await asyncio.sleep(0.05)
        assert relay.rounds > rounds
        assert len(recorder.seen) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_worker_plan_runs_the_relay_with_the_cache_consumer(stores: Stores) -> None:
    from app.cache_consumer import CacheInvalidator
    from app.worker_wiring import build_worker

    plan = build_worker(stores)
    assert "outbox-relay" in plan.tasks
    cache = [c for c in plan.consumers if isinstance(c, CacheInvalidator)]
    assert len(cache) == 1 and cache[0].cache is stores.product_cache
