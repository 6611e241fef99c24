"""The product cache against Postgres going back in time: data generations, version
floors that expire, `polyshop cache flush`, and lease waiters that stop waiting as soon
as the loader is done (real Postgres and Redis)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.cache_consumer import build_product_cache
from app.commands.cache import flush_cache
from app.settings import Settings
from app.stores import Stores
from storage import products
from storage.product_cache import Entry, ProductCache
from tests.integration.test_cache import cached_version, new_product, replica, version_of
from tests.support.auth import bearer


@pytest.fixture
async def admin(stores: Stores) -> dict[str, str]:
    return await bearer(stores, "admin")


def fills(outcome: str) -> float:
    return REGISTRY.get_sample_value("polyshop_cache_fills_total", {"outcome": outcome}) or 0.0


async def test_a_floor_ahead_of_postgres_expires_and_refused_fills_are_counted(
    settings: Settings, stores: Stores, admin: dict[str, str]
) -> None:
    """Versions in Postgres went backwards (the floor says 100, the row says 1): fills are
    refused, and counted, only until the floor expires, not for days."""
    async with replica(settings, cache_floor_ttl_s=0.5) as (c, app):
        pid = await new_product(c, admin)
        cache: ProductCache = build_product_cache(app.state.stores)
        cache.floor_ttl_ms = 500
        await cache.invalidate_strict([(pid, 100)])  # a floor from "the lost future"
        refused = fills("refused")
        assert await version_of(c, pid) == 1
        assert fills("refused") == refused + 1
        assert await cached_version(stores, cache, pid) is None
        assert 0 < await stores.redis.pttl(cache.floor_key(pid)) <= 500
        await asyncio.sleep(0.6)  # past the floor's lifetime
        stored = fills("stored")
        assert await version_of(c, pid) == 1
        assert fills("stored") == stored + 1
        assert await cached_version(stores, cache, pid) == 1


async def test_flush_gives_a_new_generation_that_never_reads_the_old_keys(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, stores: Stores,
    admin: dict[str, str],
) -> None:  # fmt: skip
    pid = await new_product(client, admin)
    assert await version_of(client, pid) == 1  # cached
    cache: ProductCache = app.state.stores.product_cache
    old_generation = cache.generation
    old_key = cache.value_key(pid)
    # a cached row and a floor the restored database never had
    await stores.redis.set(old_key, Entry(7, b'{"lost": "future"}').encode())
    await cache.invalidate_strict([(pid, 7)])  # floor 7; keeps the cached 7
    assert await cached_version(stores, cache, pid) == 7
    served = await client.get(f"/products/{pid}")  # what a restore without the procedure serves
    assert served.headers["etag"] == '"7"'

    flushed = await flush_cache(settings)
    assert flushed.generation != old_generation
    assert flushed.removed >= 2  # the value and the floor
    assert await stores.redis.exists(old_key) == 0
    assert await cache.refresh_generation(force=True) == flushed.generation
    assert cache.value_key(pid) != old_key
    assert await version_of(client, pid) == 1  # from Postgres, stored in the new generation
    assert await cached_version(stores, cache, pid) == 1


async def test_a_write_reaches_replicas_still_reading_the_previous_generation(
    settings: Settings, stores: Stores, admin: dict[str, str]
) -> None:
    """After a flush, a replica reads the old generation until its next check; a write on
    another replica (which reads the new one at once) invalidates both."""
    slow_check = {"cache_generation_check_s": 600.0}
    async with (
        replica(settings, **slow_check) as (writer, _),
        replica(settings, **slow_check) as (reader, reader_app),
    ):
        pid = await new_product(writer, admin)
        assert await version_of(writer, pid) == 1  # the writer knows the first generation
        assert await version_of(reader, pid) == 1  # cached in it
        await flush_cache(settings)
        reader_cache: ProductCache = reader_app.state.stores.product_cache
        assert await version_of(reader, pid) == 1  # refilled, still in the old generation
        assert await cached_version(stores, reader_cache, pid) == 1
        write = await writer.patch(f"/products/{pid}", json={"stock": 9}, headers=admin)
        assert write.status_code == 200
        assert await version_of(reader, pid) == 2  # not the old generation's version 1


async def test_lease_waiters_stop_waiting_when_the_loader_gives_up(
    stores: Stores, admin: dict[str, str], client: httpx.AsyncClient
) -> None:
    """Replica A loads a cold key whose fill the floor refuses; replica B, waiting on A's
    lease, loads for itself as soon as A releases it, not after the whole lease wait
    (here a minute: the test would time out)."""
    pid = await new_product(client, admin)
    a, b = build_product_cache(stores), build_product_cache(stores)
    for cache in (a, b):
        cache.lease_wait_ms = 60_000
    await a.invalidate_strict([(pid, 100)])  # every fill is refused
    loading, release = asyncio.Event(), asyncio.Event()

    async def slow_load() -> Entry | None:
        loading.set()
        await release.wait()
        return Entry(1, b"{}")

    async def fast_load() -> Entry | None:
        async with stores.pg.connection() as conn:
            product = await products.get(conn, pid)
        assert product is not None
        return Entry(product.version, b"{}")

    first = asyncio.create_task(a.get_or_load(pid, slow_load))
    await asyncio.wait_for(loading.wait(), 10)
    assert await stores.redis.exists(a.lease_key(pid)) == 1
    second = asyncio.create_task(b.get_or_load(pid, fast_load))
    await asyncio.sleep(0.05)
    assert not second.done()  # waiting on A's lease
    refused = fills("refused")
    release.set()
    assert await asyncio.wait_for(first, 10) == Entry(1, b"{}")
    assert await asyncio.wait_for(second, 10) == Entry(1, b"{}")
    assert fills("refused") == refused + 2  # both fills, counted in /metrics
    assert await stores.redis.exists(a.lease_key(pid)) == 0
