"""The product read cache of a process, and the outbox consumer "cache" that invalidates it.

The request path invalidates right after each commit; this consumer applies the same
invalidation from the outbox, so one missed while Redis was down is applied later.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.metrics import CACHE_BREAKER_STATE, CACHE_FILLS, CACHE_REQUESTS
from app.stores import Stores
from storage import outbox, products
from storage.generation import read_generation
from storage.outbox import OutboxEvent
from storage.postgres import read_connection
from storage.product_cache import BreakerState, CacheResult, FillResult, ProductCache

CONSUMER_NAME = "cache"

_BREAKER_GAUGE: dict[BreakerState, int] = {"closed": 0, "half-opened": 1, "opened": 2}


def _count(result: CacheResult) -> None:
    CACHE_REQUESTS.labels(result).inc()


def _fill(result: FillResult) -> None:
    CACHE_FILLS.labels(result).inc()


def _breaker(state: BreakerState) -> None:
    CACHE_BREAKER_STATE.set(_BREAKER_GAUGE[state])


def build_product_cache(stores: Stores) -> ProductCache:
    s = stores.settings

    async def undelivered() -> list[tuple[int, int]]:
        async with read_connection(stores.pg) as conn:
            return await outbox.undelivered(conn, CONSUMER_NAME, products.AGGREGATE)

    async def generation() -> str:
        async with read_connection(stores.pg) as conn:
            return await read_generation(conn)

    return ProductCache(
        stores.redis,
        prefix=s.redis_prefix,
        ttl_s=s.cache_ttl_s,
        ttl_jitter=s.cache_ttl_jitter,
        lease_ms=s.cache_lease_ms,
        lease_wait_ms=s.cache_lease_wait_ms,
        breaker_threshold=s.cache_breaker_threshold,
        breaker_open_s=s.cache_breaker_open_s,
        on_result=_count,
        on_breaker_state=_breaker,
        catch_up=undelivered,
        generation=generation,
        generation_check_s=s.cache_generation_check_s,
        floor_ttl_ms=int(s.cache_floor_ttl_s * 1000),
        on_fill=_fill,
    )


class CacheInvalidator:
    """Outbox consumer: raise each product's version floor and drop older cached bytes.
    Idempotent and order-insensitive (the Lua script keeps the highest version)."""

    name = CONSUMER_NAME

    def __init__(self, cache: ProductCache) -> None:
        self.cache = cache

    async def apply(self, events: Sequence[OutboxEvent]) -> None:
        latest: dict[int, int] = {}
        for event in events:
            if event.aggregate == products.AGGREGATE:
                latest[event.aggregate_id] = max(event.version, latest.get(event.aggregate_id, 0))
        if latest:
            await self.cache.invalidate_strict(latest.items())


def cache_consumer(stores: Stores) -> CacheInvalidator:
    return CacheInvalidator(build_product_cache(stores))
