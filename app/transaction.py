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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from psycopg import AsyncConnection

from app.cache_writes import invalidate_products
from app.deps import get_stores
from app.stores import PgPool, Stores
from storage.errors import StoreUnavailable
from storage.postgres import POSTGRES_DOWN, read_connection

log = structlog.get_logger()

AfterCommit = Callable[[], Awaitable[None]]


class RequestTransaction:
    """What a route sees of its transaction: the connection (checked out from the pool
    on first use, so a route that streams an upload first holds none meanwhile) and
    the effects to run after the commit or the rollback."""

    def __init__(self, pool: PgPool) -> None:
        self._pool = pool
        self._scope = contextlib.AsyncExitStack()
        self._conn: AsyncConnection[dict[str, Any]] | None = None
        self._effects: list[AfterCommit] = []
        self._undo: list[AfterCommit] = []
        self._changed_products: dict[int, int] = {}

    async def connection(self) -> AsyncConnection[dict[str, Any]]:
        """The request's connection, inside its transaction."""
        if self._conn is None:
            conn = await self._scope.enter_async_context(self._pool.connection())
            await self._scope.enter_async_context(conn.transaction())
            self._conn = conn
        return self._conn

    def after_commit(self, effect: AfterCommit) -> None:
        """Run `effect` once the transaction has committed (never after a rollback)."""
        self._effects.append(effect)

    def after_rollback(self, effect: AfterCommit) -> None:
        """Run `effect` (best effort) if the transaction rolls back: the clean-up of what
        the request put into another store before it failed."""
        self._undo.append(effect)

    def product_changed(self, product_id: int, version: int | None) -> None:
        """The product was written at `version` (None: it was not, e.g. a replay): its
        cached JSON is invalidated after the commit (read-your-writes)."""
        if version is not None:
            known = self._changed_products.get(product_id, 0)
            self._changed_products[product_id] = max(known, version)

    def products_changed(self, changes: Sequence[tuple[int, int]]) -> None:
        for product_id, version in changes:
            self.product_changed(product_id, version)

    async def _committed(self, stores: Stores) -> None:
        if self._changed_products:
            await invalidate_products(stores, list(self._changed_products.items()))
        for effect in self._effects:
            await effect()

    async def _rolled_back(self) -> None:
        for effect in self._undo:
            try:
                await effect()
            except Exception:
                log.exception("transaction.rollback_effect_failed")


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
        async with tx._scope:  # the commit, or the rollback if the route raised
            yield tx
    except BaseException as exc:
        await tx._rolled_back()
        if isinstance(exc, POSTGRES_DOWN):
            raise postgres_unavailable(exc) from exc
        raise
    await tx._committed(stores)


TransactionDep = Annotated[RequestTransaction, Depends(request_transaction, scope="function")]
ReadConnectionDep = Annotated[
    AsyncConnection[dict[str, Any]], Depends(read_connection_dependency, scope="function")
]
