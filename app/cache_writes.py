"""The response caches on the write path (products; orders through the same `invalidate`,
app/order_cache.py): invalidate after the commit, before answering.

Read-your-writes through the cache (design guarantee 3) asks that once a write has
returned, no replica serves the older version from Redis. The request invalidates the
product right after its commit. When this replica cannot reach Redis (its breaker is
open or the call failed) while others can (a partial partition), they would serve the
old bytes until the outbox relay in the worker applies the same invalidation, usually a
few milliseconds later. So the write hands the invalidation over to the relay and waits,
at most `cache_handoff_wait_s`, until the relay's "cache" consumer has applied its event.
It stops waiting as soon as the relay reports a failed attempt: then Redis is out of
reach for the relay too, and the relay retries with backoff. The write is committed
either way; the wait only decides when it is answered.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from fastapi import Request
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_exponential,
)

from app.deps import get_stores
from app.metrics import CACHE_HANDOFFS
from app.stores import CACHE_CONSUMER, Stores
from storage import outbox, products
from storage.outbox import Delivery
from storage.postgres import POSTGRES_DOWN, read_connection
from storage.product_cache import ProductCache

log = structlog.get_logger()


def get_product_cache(request: Request) -> ProductCache:
    """The process's product cache, built with the other stores in the lifespan."""
    return get_stores(request).product_cache


async def invalidate_products(stores: Stores, changes: Sequence[tuple[int, int]]) -> None:
    """After the commit, before answering: (product id, version written) pairs. Called
    by the request transaction (app.transaction) for the products its route changed.
    Every list page may show them: the catalog generation moves first."""
    await stores.product_list_cache.try_bump()  # counted, logged; the relay bumps again
    await invalidate(stores, stores.product_cache, products.AGGREGATE, changes)


async def invalidate(
    stores: Stores, cache: ProductCache, aggregate: str, changes: Sequence[tuple[int, int]]
) -> None:
    """(id, version written) pairs of `aggregate`, whose responses `cache` keeps; what
    this replica could not invalidate is handed to the relay (the order cache too)."""
    missed = [(i, version) for i, version in changes if not await cache.invalidate(i, version)]
    if missed:
        await hand_off(stores, missed, aggregate)


async def hand_off(
    stores: Stores, missed: Sequence[tuple[int, int]], aggregate: str = products.AGGREGATE
) -> Delivery:
    """Wait for the outbox relay to apply the invalidations this replica could not."""
    state: Delivery = "pending"
    wait_s = stores.settings.cache_handoff_wait_s
    if wait_s > 0:
        retrying = AsyncRetrying(
            stop=stop_after_delay(wait_s),
            wait=wait_exponential(multiplier=0.005, max=0.1),
            retry=retry_if_result(lambda delivered: delivered == "pending")
            | retry_if_exception_type(POSTGRES_DOWN),
            # out of time (or Postgres kept failing): still pending as far as we know
            retry_error_callback=lambda _: "pending",
        )
        state = await retrying(_delivery, stores, missed, aggregate)
    outcome = {"done": "relayed", "failing": "relay_failing", "pending": "timeout"}[state]
    CACHE_HANDOFFS.labels(outcome).inc()
    log.warning("cache.handoff", aggregate=aggregate, ids=[i for i, _ in missed], outcome=outcome)
    return state


async def _delivery(stores: Stores, missed: Sequence[tuple[int, int]], aggregate: str) -> Delivery:
    async with read_connection(stores.pg) as conn:
        return await outbox.delivery(conn, CACHE_CONSUMER, aggregate, missed)
