"""The request's Postgres transaction, and the effects that run after its commit.

A route that writes takes `TransactionDep`: one pooled connection inside one
transaction, committed when the route returns and rolled back when it raises. A
Postgres that cannot be reached (no pooled connection in time, the server gone
mid-query, or the commit itself failing) becomes the 503 problem here, once for every
route. Effects on other stores that must follow the commit (the product cache's
invalidation, later job requests) are collected on the transaction and run after the
commit, before the response is sent; after a rollback they are dropped.

The dependency is function-scoped: its exit (the commit and the effects) runs when the
route function returns, before FastAPI sends the response, so a client that got its
answer can rely on the write and its effects (read-your-writes through the cache).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection

from app.cache_writes import invalidate_products
from app.deps import get_stores
from kit.transaction import RequestTransaction
from storage.errors import StoreUnavailable
from storage.postgres import POSTGRES_DOWN, read_connection


def postgres_unavailable(exc: BaseException) -> StoreUnavailable:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StoreUnavailable("postgres", first_line)


@contextlib.contextmanager
def postgres_errors() -> Iterator[None]:
    """For reads outside the request transaction (a cache miss, a list): the same 503."""
    try:
        yield
    except POSTGRES_DOWN as exc:
        raise postgres_unavailable(exc) from exc


async def read_connection_dependency(
    request: Request,
) -> AsyncIterator[AsyncConnection[dict[str, Any]]]:
    """A connection for a read-only route (autocommit: one round trip per statement)."""
    with postgres_errors():
        async with read_connection(get_stores(request).pg) as conn:
            yield conn


async def request_transaction(request: Request) -> AsyncIterator[RequestTransaction]:
    stores = get_stores(request)
    tx = RequestTransaction(stores.pg)
    try:
        async with tx.scope():
            yield tx
    except BaseException as exc:
        await tx.rolled_back()
        if isinstance(exc, POSTGRES_DOWN):
            raise postgres_unavailable(exc) from exc
        raise
    await tx.committed(functools.partial(invalidate_products, stores))


TransactionDep = Annotated[RequestTransaction, Depends(request_transaction, scope="function")]
ReadConnectionDep = Annotated[
    AsyncConnection[dict[str, Any]], Depends(read_connection_dependency, scope="function")
]
