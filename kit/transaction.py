"""The request's Postgres transaction as a route sees it: one connection inside one
transaction (checked out on first use), and the effects to run after its commit or its
rollback. The dependency that opens and settles it is app.transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

log = structlog.get_logger()

Conn = AsyncConnection[dict[str, Any]]
AfterCommit = Callable[[], Awaitable[None]]
# (product id, version written) pairs -> invalidated in the product cache
ProductsChanged = Callable[[Sequence[tuple[int, int]]], Awaitable[None]]


class RequestTransaction:
    """What a route sees of its transaction: the connection (checked out from the pool
    on first use, so a route that streams an upload first holds none meanwhile) and
    the effects to run after the commit or the rollback."""

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        self._pool = pool
        self._scope = contextlib.AsyncExitStack()
        self._conn: Conn | None = None
        self._effects: list[AfterCommit] = []
        self._undo: list[AfterCommit] = []
        self._changed_products: dict[int, int] = {}

    async def connection(self) -> Conn:
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

    @contextlib.asynccontextmanager
    async def scope(self) -> AsyncIterator[None]:
        """Around the route: the commit when it returns, the rollback when it raises
        (a connection never checked out commits nothing)."""
        async with self._scope:
            yield

    async def committed(self, products_changed: ProductsChanged) -> None:
        """After the commit: the products' invalidation, then the other effects."""
        if self._changed_products:
            await products_changed(list(self._changed_products.items()))
        for effect in self._effects:
            await effect()

    async def rolled_back(self) -> None:
        for effect in self._undo:
            try:
                await effect()
            except Exception:
                log.exception("transaction.rollback_effect_failed")
