"""The outbox consumer "cache": applies each product change to the product cache (and
moves the catalog generation of the list pages, app/product_list_cache.py), and each
order change to the order cache (app/order_cache.py).

The request path invalidates right after each commit; this consumer applies the same
invalidation from the outbox, so one missed while Redis was down is applied later.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.metrics import LIST_CACHE_BUMPS
from app.stores import CACHE_CONSUMER, Stores, create_product_cache
from storage import orders as order_events
from storage import products
from storage.answer_cache import AnswerCache
from storage.outbox import OutboxEvent
from storage.product_cache import ProductCache

CONSUMER_NAME = CACHE_CONSUMER


def build_product_cache(stores: Stores) -> ProductCache:
    """Another product cache on the same clients: what a second replica would hold."""
    return create_product_cache(stores.settings, stores.pg, stores.redis)


class CacheInvalidator:
    """Outbox consumer: raise each product's (and, with `orders`, each order's) version
    floor and drop older cached bytes. Idempotent and order-insensitive (the Lua script
    keeps the highest version). With `lists`, a batch with product events also bumps the
    catalog generation (raises if Redis fails: the relay retries the batch)."""

    name = CONSUMER_NAME

    def __init__(
        self,
        cache: ProductCache,
        orders: ProductCache | None = None,
        lists: AnswerCache | None = None,
    ) -> None:
        self.cache = cache
        self.orders = orders
        self.lists = lists

    async def apply(self, events: Sequence[OutboxEvent]) -> None:
        caches = {products.AGGREGATE: self.cache}
        if self.orders is not None:
            caches[order_events.AGGREGATE] = self.orders
        latest: dict[str, dict[int, int]] = {}
        for event in events:
            if event.aggregate in caches:
                seen = latest.setdefault(event.aggregate, {})
                seen[event.aggregate_id] = max(event.version, seen.get(event.aggregate_id, 0))
        if self.lists is not None and self.lists.enabled and products.AGGREGATE in latest:
            await self.lists.bump()
            LIST_CACHE_BUMPS.labels("outbox").inc()
        for aggregate, versions in latest.items():
            await caches[aggregate].invalidate_strict(versions.items())


def cache_consumer(stores: Stores) -> CacheInvalidator:
    """The consumer on the process's own product and order caches."""
    return CacheInvalidator(stores.product_cache, stores.order_cache, stores.product_list_cache)
