"""The cached product read carried by the limiter's round trip (app/product_prefetch.py,
ProductCache.read_plan): which requests get a plan, and when a prefetched read is used.
The Redis here refuses connections, so a read that goes to Redis falls back to `load`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.product_prefetch import order_read_plan, product_read_plan
from app.routes.thin import plain_id
from storage.cache import create_redis
from storage.product_cache import CacheResult, Entry, ProductCache

DEAD_REDIS = "redis://127.0.0.1:1/0"
CACHED = Entry(3, b'{"id": 5}')


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    redis = create_redis(DEAD_REDIS, timeout_s=0.2)
    yield redis
    await redis.aclose()


def make_cache(redis: Redis, results: list[CacheResult]) -> ProductCache:
    return ProductCache(
        redis, prefix="unit:", ttl_s=60, ttl_jitter=0.1, breaker_threshold=5,
        on_result=results.append,
    )  # fmt: skip


async def postgres_row() -> Entry | None:
    return Entry(9, b"{}")


def test_plain_ids_only() -> None:
    assert plain_id("5") == 5
    assert plain_id(str(2**63 - 1)) == 2**63 - 1
    for text in ("0", "007", "-1", "+1", "1.0", "abc", "", str(2**63), "٣"):
        assert plain_id(text) is None, text


async def test_only_a_get_of_one_product_gets_a_plan(dead_redis: Redis) -> None:
    cache = make_cache(dead_redis, [])
    await cache.breaker_state()  # the breaker exists once the cache has been used

    def plan(method: str, path: str) -> object:
        return product_read_plan({"method": method, "path": path}, cache)

    got = product_read_plan({"method": "GET", "path": "/products/5"}, cache)
    assert got is not None
    assert got.keys == (cache.value_key(5), cache.floor_key(5))
    assert plan("PATCH", "/products/5") is None
    assert plan("GET", "/products/5/images") is None
    assert plan("GET", "/products/05") is None
    assert plan("GET", "/products") is None


async def test_only_a_get_of_one_order_gets_a_plan_of_the_order_cache(dead_redis: Redis) -> None:
    orders = ProductCache(dead_redis, prefix="unit:", ttl_s=60, ttl_jitter=0.1, kind="order")
    await orders.breaker_state()

    def plan(method: str, path: str) -> object:
        return order_read_plan({"method": method, "path": path}, orders)

    got = order_read_plan({"method": "GET", "path": "/orders/5"}, orders)
    assert got is not None
    assert got.keys == (orders.value_key(5), orders.floor_key(5))
    assert got.keys[0].startswith("unit:order:")
    assert plan("DELETE", "/orders/5") is None
    assert plan("GET", "/orders/5/transitions") is None
    assert plan("GET", "/orders/05") is None
    assert plan("GET", "/orders") is None
    assert plan("GET", "/products/5") is None


async def test_a_read_prefetched_for_another_cache_is_not_used(dead_redis: Redis) -> None:
    """A product's entry never stands in for an order's of the same id (or back)."""
    products = make_cache(dead_redis, [])
    orders = ProductCache(dead_redis, prefix="unit:", ttl_s=60, ttl_jitter=0.1, kind="order")
    for cache in (products, orders):
        await cache.breaker_state()
    plan = products.read_plan(5)
    assert plan is not None
    got = await orders.get_or_load(5, postgres_row, plan.read((CACHED.encode(), None)))
    assert got == await postgres_row()  # Redis refused: the order was read from "Postgres"


async def test_a_prefetched_hit_costs_no_redis_call(dead_redis: Redis) -> None:
    results: list[CacheResult] = []
    cache = make_cache(dead_redis, results)
    assert cache.read_plan(5) is None  # no breaker yet: the first read goes its own way
    await cache.breaker_state()
    plan = cache.read_plan(5)
    assert plan is not None
    loads = 0

    async def load() -> Entry | None:
        nonlocal loads
        loads += 1
        return Entry(9, b"{}")

    got = await cache.get_or_load(5, load, plan.read((CACHED.encode(), b"2")))
    assert (got, loads, results) == (CACHED, 0, ["hit"])  # Redis (dead) never asked


async def test_a_prefetched_read_is_dropped_after_a_failure_since_its_plan(
    dead_redis: Redis,
) -> None:
    """A Redis failure between the plan and its use means invalidations may be waiting:
    the prefetched value is not served; the read goes its own way (here: Redis is dead,
    so Postgres, i.e. `load`)."""
    results: list[CacheResult] = []
    cache = make_cache(dead_redis, results)
    await cache.breaker_state()
    plan = cache.read_plan(5)
    assert plan is not None

    assert await cache.get_or_load(6, postgres_row) == Entry(9, b"{}")  # fails in Redis
    assert cache.read_plan(5) is None  # an outage to catch up on: no plan
    got = await cache.get_or_load(5, postgres_row, plan.read((CACHED.encode(), None)))
    assert got == Entry(9, b"{}")
    assert results == ["error", "error"]


async def test_a_prefetched_read_of_another_product_is_not_used(dead_redis: Redis) -> None:
    results: list[CacheResult] = []
    cache = make_cache(dead_redis, results)
    await cache.breaker_state()
    plan = cache.read_plan(5)
    assert plan is not None
    got = await cache.get_or_load(6, postgres_row, plan.read((CACHED.encode(), None)))
    assert got == Entry(9, b"{}")
    assert results == ["error"]
