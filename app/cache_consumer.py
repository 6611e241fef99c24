"""The outbox consumer "cache": applies each product change to the product cache.

The request path invalidates right after each commit; this consumer applies the same
invalidation from the outbox, so one missed while Redis was down is applied later.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.stores import CACHE_CONSUMER, Stores, create_product_cache
from storage import products
from storage.outbox import OutboxEvent
from storage.product_cache import ProductCache

CONSUMER_NAME = CACHE_CONSUMER


def build_product_cache(stores: Stores) -> ProductCache:
    """Another product cache on the same clients: what a second replica would hold."""
    return create_product_cache(stores.settings, stores.pg, stores.redis)


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
    """The consumer on the process's own product cache."""
    return CacheInvalidator(stores.product_cache)
