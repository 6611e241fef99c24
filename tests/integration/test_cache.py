"""The Redis read cache of GET /products/{id} against real Postgres and Redis:
read-your-writes under races, stampede protection, Redis outages."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.cache_consumer import CONSUMER_NAME, build_product_cache, cache_consumer
from app.main import create_app
from app.relay import Relay
from app.settings import Settings
from app.stores import Stores, open_stores
from storage import outbox, products
from storage.product_cache import Entry, ProductCache
from tests.support.auth import bearer

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: connection refused at once

Replica = tuple[httpx.AsyncClient, FastAPI]


@contextlib.asynccontextmanager
async def replica(settings: Settings, **overrides: Any) -> AsyncIterator[Replica]:
    """One more app process sharing the stores (its own cache object, breaker, pool)."""
    app = create_app(settings.model_copy(update=overrides))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as c:
            yield c, app


@pytest.fixture
async def admin(stores: Stores) -> dict[str, str]:
    return await bearer(stores, "admin")


async def new_product(client: httpx.AsyncClient, admin: dict[str, str], sku: str = "S1") -> int:
    response = await client.post(
        "/products",
        json={"sku": sku, "name": "Lamp", "price": "10.00", "category": "Lighting"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    product_id: int = response.json()["id"]
    return product_id


async def version_of(client: httpx.AsyncClient, product_id: int) -> int:
    response = await client.get(f"/products/{product_id}")
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    assert response.headers["etag"] == f'"{version}"'
    return version


async def cached_version(stores: Stores, cache: ProductCache, product_id: int) -> int | None:
    raw = await stores.redis.get(cache.value_key(product_id))
    return Entry.decode(raw).version if isinstance(raw, bytes) else None


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_reads_fill_the_cache_and_writes_invalidate_it(
    client: httpx.AsyncClient, app: FastAPI, stores: Stores, admin: dict[str, str]
) -> None:
    pid = await new_product(client, admin)
    hits = metric("polyshop_cache_requests_total", {"result": "hit"})
    first = await client.get(f"/products/{pid}")
    cache: ProductCache = app.state.stores.product_cache
    assert await cached_version(stores, cache, pid) == 1
    second = await client.get(f"/products/{pid}")
    assert second.content == first.content
    assert metric("polyshop_cache_requests_total", {"result": "hit"}) == hits + 1
    ttl = await stores.redis.pttl(cache.value_key(pid))
    s = stores.settings
    assert s.cache_ttl_s * 1000 * (1 - s.cache_ttl_jitter) - 1000 <= ttl
    assert ttl <= s.cache_ttl_s * 1000 * (1 + s.cache_ttl_jitter)

    await client.patch(f"/products/{pid}", json={"name": "Desk Lamp"}, headers=admin)
    assert await cached_version(stores, cache, pid) is None
    assert (await client.get(f"/products/{pid}")).json()["name"] == "Desk Lamp"
    await client.delete(f"/products/{pid}", headers=admin)
    assert (await client.get(f"/products/{pid}")).status_code == 404
    assert 'polyshop_cache_requests_total{result="hit"}' in (await client.get("/metrics")).text


async def test_slow_reader_cannot_put_back_the_version_it_read_before_a_write(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    """The classic race, made deterministic: a reader (another replica) reads v(n) from
    Postgres, a write commits v(n+1) and returns, then the reader tries to fill the cache."""
    pid = await new_product(client, admin)
    slow_replica = build_product_cache(stores)
    await slow_replica.refresh_generation()  # its keys are named by it
    for expected_old in (1, 2):  # without a floor yet, then with one
        read_done, release = asyncio.Event(), asyncio.Event()

        async def slow_load(
            read_done: asyncio.Event = read_done, release: asyncio.Event = release
        ) -> Entry | None:
            async with stores.pg.connection() as conn:
                product = await products.get(conn, pid)
            assert product is not None
            read_done.set()
            await release.wait()
            return Entry(product.version, b"{}")

        await stores.redis.delete(slow_replica.value_key(pid))  # a cold key: the reader loads
        reader = asyncio.create_task(slow_replica.get_or_load(pid, slow_load))
        await asyncio.wait_for(read_done.wait(), 10)
        write = await client.patch(f"/products/{pid}", json={"stock": expected_old}, headers=admin)
        assert write.status_code == 200
        release.set()
        assert (await reader) == Entry(expected_old, b"{}")  # it began before the write
        assert await cached_version(stores, slow_replica, pid) is None  # but was refused
        assert await version_of(client, pid) == expected_old + 1


async def test_a_read_after_a_write_does_not_join_a_load_started_before_it(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    """Single flight must not hand a caller that arrives after a write the row that an
    earlier, still running load read before the write."""
    pid = await new_product(client, admin)
    replica_cache = build_product_cache(stores)
    read_done, release = asyncio.Event(), asyncio.Event()

    async def load(slow: bool) -> Entry | None:
        async with stores.pg.connection() as conn:
            product = await products.get(conn, pid)
        assert product is not None
        if slow:
            read_done.set()
            await release.wait()
        return Entry(product.version, b"{}")

    early = asyncio.create_task(replica_cache.get_or_load(pid, lambda: load(True)))
    await asyncio.wait_for(read_done.wait(), 10)
    write = await client.patch(f"/products/{pid}", json={"stock": 1}, headers=admin)
    assert write.status_code == 200
    late = await asyncio.wait_for(replica_cache.get_or_load(pid, lambda: load(False)), 10)
    assert late is not None and late.version == 2
    release.set()
    assert (await early) == Entry(1, b"{}")
    assert await cached_version(stores, replica_cache, pid) == 2


async def test_fill_is_refused_after_an_invalidation_between_floor_read_and_set(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    pid = await new_product(client, admin)
    cache = build_product_cache(stores)
    token = await cache.read_floor(pid)
    async with stores.pg.connection() as conn:
        old = await products.get(conn, pid)
    assert old is not None
    await client.patch(f"/products/{pid}", json={"stock": 3}, headers=admin)
    assert not await cache.store_if_fresh(pid, token, Entry(old.version, b"old"))
    fresh_token = await cache.read_floor(pid)
    assert fresh_token == b"2"
    assert not await cache.store_if_fresh(pid, fresh_token, Entry(1, b"older than floor"))
    assert await cache.store_if_fresh(pid, fresh_token, Entry(2, b"current"))
    assert await cached_version(stores, cache, pid) == 2
    # An old event replayed by the relay leaves the newer cached value alone.
    await cache.invalidate_strict([(pid, 1)])
    assert await cached_version(stores, cache, pid) == 2


async def test_hammer_readers_never_see_a_version_older_than_the_last_acknowledged_write(
    settings: Settings, stores: Stores, admin: dict[str, str]
) -> None:
    async with replica(settings) as (a, _), replica(settings) as (b, _):
        pid = await new_product(a, admin)
        acknowledged = 1
        violations: list[tuple[int, int]] = []
        writing = True
        hits = metric("polyshop_cache_requests_total", {"result": "hit"})

        async def writer(client: httpx.AsyncClient, n: int) -> None:
            nonlocal acknowledged
            for i in range(n):
                response = await client.patch(f"/products/{pid}", json={"stock": i}, headers=admin)
                assert response.status_code == 200, response.text
                acknowledged = max(acknowledged, response.json()["version"])

        async def reader(client: httpx.AsyncClient) -> int:
            reads = 0
            while writing:
                floor = acknowledged
                seen = await version_of(client, pid)
                if seen < floor:
                    violations.append((seen, floor))
                reads += 1
            return reads

        readers = [asyncio.create_task(reader(c)) for c in (a, b, a, b, a, b)]
        await asyncio.gather(writer(a, 15), writer(b, 15), writer(a, 15), writer(b, 15))
        writing = False
        reads = await asyncio.gather(*readers)

        assert violations == []
        assert sum(reads) > 0
        assert acknowledged == 61
        assert await version_of(a, pid) == 61 and await version_of(b, pid) == 61
        assert metric("polyshop_cache_requests_total", {"result": "hit"}) > hits


@pytest.fixture
def product_reads(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[int]:
    """Postgres reads of a product by id behind the cache, counted per id (a spy on
    storage.products.get, which still reads the real database)."""
    reads: collections.Counter[int] = collections.Counter()
    real_get = products.get

    async def counting_get(conn: Any, product_id: int) -> products.Product | None:
        reads[product_id] += 1
        return await real_get(conn, product_id)

    monkeypatch.setattr(products, "get", counting_get)
    return reads


async def test_cold_key_stampede_costs_at_most_two_postgres_reads(
    client: httpx.AsyncClient, admin: dict[str, str], product_reads: collections.Counter[int]
) -> None:
    pid = await new_product(client, admin)
    responses = await asyncio.gather(*(client.get(f"/products/{pid}") for _ in range(100)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert 1 <= product_reads[pid] <= 2


async def test_cold_key_stampede_across_two_replicas(
    settings: Settings,
    stores: Stores,
    admin: dict[str, str],
    product_reads: collections.Counter[int],
) -> None:
    """Two replicas: single flight inside each, the Redis lease between them."""
    async with replica(settings) as (a, _), replica(settings) as (b, _):
        pid = await new_product(a, admin)
        responses = await asyncio.gather(
            *(c.get(f"/products/{pid}") for _ in range(50) for c in (a, b))
        )
        assert {r.status_code for r in responses} == {200}
        assert 1 <= product_reads[pid] <= 2


async def test_redis_unreachable_reads_and_writes_go_on_behind_the_breaker(
    settings: Settings, admin: dict[str, str]
) -> None:
    bypassed = metric("polyshop_cache_requests_total", {"result": "bypass"})
    async with replica(
        settings, redis_url=DEAD_REDIS, cache_breaker_threshold=2, cache_breaker_open_s=600
    ) as (c, app):
        pid = await new_product(c, admin)
        for _ in range(5):
            assert await version_of(c, pid) == 1
        cache: ProductCache = app.state.stores.product_cache
        assert await cache.breaker_state() == "opened"
        assert metric("polyshop_cache_breaker_state") == 2
        write = await c.patch(f"/products/{pid}", json={"stock": 5}, headers=admin)
        assert write.status_code == 200
        assert await version_of(c, pid) == 2
        assert (await c.get("/products/999999")).status_code == 404
    assert metric("polyshop_cache_requests_total", {"result": "bypass"}) >= bypassed + 4


async def test_invalidation_loads_its_script_again_after_a_script_flush(
    client: httpx.AsyncClient, app: FastAPI, stores: Stores, admin: dict[str, str]
) -> None:
    """Redis restarted or SCRIPT FLUSHed under a running app: one change (the request
    path, a single EVALSHA) and a batch (the relay, a pipeline) both still invalidate."""
    a = await new_product(client, admin, "FLUSH-A")
    b = await new_product(client, admin, "FLUSH-B")
    assert [await version_of(client, p) for p in (a, b)] == [1, 1]  # both cached now
    cache: ProductCache = app.state.stores.product_cache  # made by the first read
    assert await cached_version(stores, cache, b) == 1

    await stores.redis.script_flush()
    write = await client.patch(f"/products/{a}", json={"stock": 3}, headers=admin)
    assert write.status_code == 200
    assert await cached_version(stores, cache, a) is None
    assert await version_of(client, a) == 2  # cached again, at 2

    await stores.redis.script_flush()
    await cache.invalidate_strict([(a, 3), (b, 2)])
    assert await cached_version(stores, cache, a) is None
    assert await cached_version(stores, cache, b) is None


@contextlib.asynccontextmanager
async def running_relay(stores: Stores) -> AsyncIterator[Relay]:
    """The worker's outbox relay with the cache consumer, running on `stores`."""
    relay = Relay(stores, [cache_consumer(stores)])
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.wait_for(relay.listening.wait(), 10)
        yield relay
    finally:
        stop.set()
        await task


def handoffs(outcome: str) -> float:
    return metric("polyshop_cache_handoffs_total", {"outcome": outcome})


async def test_a_write_on_a_replica_cut_off_from_redis_is_answered_once_the_relay_applied_it(
    settings: Settings, stores: Stores, admin: dict[str, str]
) -> None:
    """A partial partition: one replica cannot reach Redis, the other and the worker can.
    The cut-off replica's write hands its invalidation to the outbox relay and is answered
    only once the relay applied it, so the other replica never serves the old version
    after the answer (guarantee 3; app/cache_writes.py)."""
    async with (
        running_relay(stores),
        replica(settings) as (healthy, _),
        replica(settings, redis_url=DEAD_REDIS, cache_handoff_wait_s=10.0) as (cut_off, _),
    ):
        pid = await new_product(healthy, admin)
        assert await version_of(healthy, pid) == 1  # now cached
        relayed = handoffs("relayed")
        for stock in (2, 3):
            write = await cut_off.patch(f"/products/{pid}", json={"stock": stock}, headers=admin)
            assert write.status_code == 200
            assert await version_of(healthy, pid) == stock  # at once: no stale read
            assert await version_of(cut_off, pid) == stock
        assert handoffs("relayed") == relayed + 2


async def test_without_a_relay_the_write_is_answered_after_the_handoff_wait(
    settings: Settings, stores: Stores, admin: dict[str, str]
) -> None:
    """The worker is down too: the write is answered after `cache_handoff_wait_s`, the
    other replica serves the old bytes until a relay runs, and the relay fixes them."""
    async with (
        replica(settings) as (healthy, _),
        replica(settings, redis_url=DEAD_REDIS, cache_handoff_wait_s=0.2) as (cut_off, _),
    ):
        pid = await new_product(healthy, admin)
        assert await version_of(healthy, pid) == 1  # now cached
        timeouts = handoffs("timeout")
        write = await cut_off.patch(f"/products/{pid}", json={"stock": 2}, headers=admin)
        assert write.status_code == 200
        assert handoffs("timeout") == timeouts + 1
        assert await version_of(healthy, pid) == 1  # the stale bytes the relay must fix

        relay = Relay(stores, [cache_consumer(stores)])
        assert await relay.drain() >= 2
        assert await version_of(healthy, pid) == 2
        assert await version_of(cut_off, pid) == 2


async def test_the_handoff_ends_when_the_relay_cannot_reach_redis_either(
    settings: Settings, stores: Stores, admin: dict[str, str]
) -> None:
    """Redis is out of reach of the writing replica and of the worker: the write is
    answered at the relay's first failed attempt, not after the whole wait."""
    cut = settings.model_copy(update={"redis_url": DEAD_REDIS})
    async with (
        open_stores(cut, application_name="polyshop-test-cut") as cut_stores,
        running_relay(cut_stores),
        replica(cut, cache_handoff_wait_s=60.0) as (cut_off, _),
    ):
        pid = await new_product(cut_off, admin)  # a create has nothing to invalidate
        failing = handoffs("relay_failing")
        write = await cut_off.patch(f"/products/{pid}", json={"stock": 2}, headers=admin)
        assert write.status_code == 200
        assert handoffs("relay_failing") == failing + 1
        async with stores.pg.connection() as conn:
            state = await outbox.delivery(conn, CONSUMER_NAME, products.AGGREGATE, [(pid, 2)])
        assert state == "failing"


@pytest.mark.stack_exclusive  # CLIENT PAUSE ALL: every client of the server waits
async def test_after_redis_was_out_of_reach_a_replica_catches_up_before_serving_from_it(
    settings: Settings, stores: Stores, admin: dict[str, str]
) -> None:
    """Redis stops answering for a while (here: CLIENT PAUSE) and a write meanwhile could
    not be invalidated by anyone (its replica cut off, no relay running); Redis then
    answers again with the old bytes still in it. A replica that saw Redis fail applies
    the outbox's undelivered invalidations before it reads from Redis again."""
    pause_s = 3.0
    async with (
        replica(settings) as (reader, reader_app),
        replica(settings, redis_url=DEAD_REDIS, cache_handoff_wait_s=0.0) as (writer, _),
    ):
        pid = await new_product(reader, admin)
        assert await version_of(reader, pid) == 1  # now cached
        write = await writer.patch(f"/products/{pid}", json={"stock": 2}, headers=admin)
        assert write.status_code == 200  # committed; Redis still holds version 1

        paused_at = time.monotonic()
        await stores.redis.client_pause(int(pause_s * 1000), all=True)
        # longer than the client's timeout: this read sees Redis fail, answers from Postgres
        assert await version_of(reader, pid) == 2
        await asyncio.sleep(max(0.0, paused_at + pause_s + 0.2 - time.monotonic()))
        cache: ProductCache = reader_app.state.stores.product_cache
        assert await cached_version(stores, cache, pid) == 1  # the old bytes are back

        assert await version_of(reader, pid) == 2  # caught up first: not served
        assert await cached_version(stores, cache, pid) in (None, 2)


@pytest.mark.stack_exclusive
async def test_fault_redis_stopped_mid_test(settings: Settings, admin: dict[str, str]) -> None:
    """Really stops the dev stack's Redis: reads keep working from Postgres, and the cache is
    correct again once Redis is back (the write made meanwhile is not served stale)."""
    import devstack

    async with replica(settings, cache_breaker_threshold=2, cache_breaker_open_s=0.2) as (c, app):
        pid = await new_product(c, admin)
        assert await version_of(c, pid) == 1
        cache: ProductCache = app.state.stores.product_cache
        await asyncio.to_thread(devstack.stop_service, "redis")
        try:
            for _ in range(4):
                assert await version_of(c, pid) == 1
            write = await c.patch(f"/products/{pid}", json={"stock": 4}, headers=admin)
            assert write.status_code == 200
            assert await version_of(c, pid) == 2
            assert await cache.breaker_state() in ("opened", "half-opened")
        finally:
            await asyncio.to_thread(devstack.start_service, "redis")
        await asyncio.sleep(0.3)  # past the breaker's open time: the next read probes Redis
        for _ in range(3):
            assert await version_of(c, pid) == 2
        assert await cache.breaker_state() == "closed"
        assert await cached_version(app.state.stores, cache, pid) == 2


async def test_bench_bare_route_exists_only_when_enabled(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str]
) -> None:
    pid = await new_product(client, admin)
    assert (await client.get(f"/_bench/bare/{pid}")).status_code == 404
    async with replica(settings, bench_routes=True) as (c, _):
        bare = await c.get(f"/_bench/bare/{pid}")  # read and kept by the FastAPI route
        again = await c.get(f"/_bench/bare/{pid}")  # from memory, by the thin route
        real = await c.get(f"/products/{pid}")
        for answer in (bare, again):
            assert answer.status_code == 200
            assert answer.content == real.content
            assert answer.headers["etag"] == real.headers["etag"]
            assert answer.headers["content-type"] == real.headers["content-type"]
    assert "/_bench/bare/{product_id}" not in (await client.get("/openapi.json")).text
