"""`GET /orders/{id}` through Redis: the order's response cached like a product's.

The order read was the one authenticated request of issue 19's hot path that still
went to Postgres on every call (docs/benchmarks.md: the profile of the order read). Its
response is now kept in a cache of its own (`Stores.order_cache`, kind "order"), built
from the product cache (storage/product_cache.py) with all of its rules: versioned
entries, the version floor that refuses a stale fill, single flight and leases, the
circuit breaker, the generation, the catch-up from the outbox after an outage. With
the limiter on, the limiter's script reads the entry and its floor (app/product_prefetch.py),
so a cached order read costs the one Redis round trip a cached product read costs.

Authorization is not cached: an entry holds the order's customer id beside the body
(`b"<customer id>\\n<body>"`), and every read checks it against the principal, who was
authenticated as before (app/auth.py: `authenticate`, its key cache with LISTEN/NOTIFY
revocation). A customer reading another customer's order gets the 404 of a missing one.

Read-your-writes: an order is created with nothing cached for its id (a missing order
is never cached), and every status change (the API's cancel and transitions, the web
pages' cancel and warehouse steps) invalidates its entry after the commit and before
the answer (`invalidate_orders`: the floor raised to the new version on every replica's
keys); what a replica could not invalidate is handed to the outbox relay, whose "cache"
consumer applies the order events too (app/cache_consumer.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.cache_writes import invalidate
from app.problems import NotFound
from app.schemas.orders import order_json
from app.stores import Stores
from app.transaction import postgres_errors
from storage import orders
from storage.api_keys import ApiKey
from storage.postgres import read_connection
from storage.product_cache import Entry, Prefetched


def order_entry(order: orders.Order) -> Entry:
    """What the cache keeps of an order: its version, its customer, its response."""
    return Entry(order.version, b"%d\n%b" % (order.customer_id, order_json(order)))


async def order_body(
    stores: Stores, order_id: int, principal: ApiKey, prefetched: Prefetched | None = None
) -> bytes:
    """The order's response body if `principal` may read it; NotFound otherwise (also for
    another customer's order: ids leak nothing). The cache's entry, or Postgres on a
    miss; `prefetched`: the entry and floor read by the request's limiter call."""

    async def load() -> Entry | None:
        with postgres_errors():
            async with read_connection(stores.pg) as conn:
                order = await orders.get(conn, order_id)
        return None if order is None else order_entry(order)

    if stores.settings.cache_enabled:
        entry = await stores.order_cache.get_or_load(order_id, load, prefetched)
    else:
        entry = await load()
    if entry is None:
        raise NotFound(f"no order {order_id}")
    owner, _, body = entry.body.partition(b"\n")
    if principal.role == "customer" and int(owner) != principal.customer_id:
        raise NotFound(f"no order {order_id}")
    return body


async def invalidate_orders(stores: Stores, changes: Sequence[tuple[int, int]]) -> None:
    """After the commit, before answering: (order id, version written) pairs."""
    await invalidate(stores, stores.order_cache, orders.AGGREGATE, changes)
