"""A cached product read on the rate limiter's round trip (issue 19).

With the limiter on, `GET /products/{id}` used to cost two Redis round trips: the
limiter's script (EVALSHA), then the cache's MGET of the value and its version floor.
The limiter's script now reads those two keys as well, after taking the tokens, in the
same atomic call (app/middleware/token_bucket.py: LUA_TAKE), and hands them to the route
through the request's state; the cache uses them instead of its own MGET when they are
still valid (storage/product_cache.py: `ReadPlan`, `get_or_load(prefetched=...)`), and
reads for itself otherwise. Every guarantee holds as with the MGET: the value and the
floor are read together, before Postgres, after the request arrived.

An authenticated `GET /orders/{id}` is read the same way from the order cache
(app/order_cache.py): `order_read_plan`.
"""

from __future__ import annotations

from starlette.types import Scope

from app.routes.thin import plain_id
from storage.product_cache import Prefetched, ProductCache, ReadPlan

_PREFIX = "/products/"
_ORDERS = "/orders/"
_STATE_KEY = "polyshop_product_prefetch"


def product_read_plan(scope: Scope, cache: ProductCache) -> ReadPlan | None:
    """The cache keys of this request's product read, if it is one and the cache can take
    a read made for it (None otherwise: the route reads as usual)."""
    path: str = scope["path"]
    if scope["method"] != "GET" or not path.startswith(_PREFIX):
        return None
    product_id = plain_id(path[len(_PREFIX) :])
    return None if product_id is None else cache.read_plan(product_id)


def order_read_plan(scope: Scope, cache: ProductCache) -> ReadPlan | None:
    """The same for `GET /orders/{id}` and the order cache (only asked for a request
    that carries a key: without one the read is refused before the cache)."""
    path: str = scope["path"]
    if scope["method"] != "GET" or not path.startswith(_ORDERS):
        return None
    order_id = plain_id(path[len(_ORDERS) :])
    return None if order_id is None else cache.read_plan(order_id)


def hand_prefetched(scope: Scope, prefetched: Prefetched) -> None:
    scope.setdefault("state", {})[_STATE_KEY] = prefetched


def prefetched_of(scope: Scope) -> Prefetched | None:
    found = scope.get("state", {}).get(_STATE_KEY)
    return found if isinstance(found, Prefetched) else None
