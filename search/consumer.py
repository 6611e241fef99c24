"""The outbox consumer that keeps the product index in sync with Postgres.

The relay hands it batches of events; it re-reads the current rows of the product ids
in the batch and writes them in one bulk request to the alias, with external versions.
Raising (engine down, an item refused) fails the whole batch: the relay retries it with
backoff and dead-letters it after repeated failure. Applying twice is harmless.

With `on_visible` (the search cache's generation bump, search/cache.py), the bulk waits
until a refresh has made its writes visible to searches (`refresh=wait_for`), and then
`on_visible` runs: a cached answer from before the refresh never survives it. An item
refused as already applied (a version conflict, the delete of a document already gone)
may have been written by an attempt that did not wait for its refresh: the alias is
refreshed first. `on_visible` failing (Redis down) fails the batch like the bulk would:
the writes are in the index already (searches from the engine see them); the retry
writes them again (refused as conflicts, harmless) and bumps again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from search.engine import SearchEngine
from search.index_admin import ensure_alias
from search.sync import SyncResult, sync_ids
from storage.outbox import OutboxEvent
from storage.products import AGGREGATE as PRODUCT_AGGREGATE

log = structlog.get_logger()

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]

CONSUMER_NAME = "search"


class SearchIndexConsumer:
    name = CONSUMER_NAME

    def __init__(
        self,
        pg: PgPool,
        engine: SearchEngine,
        index_prefix: str,
        *,
        observe_lag: Callable[[float], None] | None = None,
        on_visible: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.pg = pg
        self.engine = engine
        self.index_prefix = index_prefix
        self.observe_lag = observe_lag
        self.on_visible = on_visible
        self._alias: str | None = None

    async def apply(self, events: Sequence[OutboxEvent]) -> None:
        await self.apply_and_report(events)

    async def apply_and_report(self, events: Sequence[OutboxEvent]) -> SyncResult:
        versions: dict[int, int] = {}
        for event in events:
            if event.aggregate != PRODUCT_AGGREGATE:
                continue
            versions[event.aggregate_id] = max(event.version, versions.get(event.aggregate_id, 0))
        if not versions:
            return SyncResult(0, 0, 0)
        if self._alias is None:
            self._alias = await ensure_alias(self.engine, self.pg, self.index_prefix)
        try:
            async with self.pg.connection() as conn:
                # require_alias: never auto-create a concrete index named like the alias
                result = await sync_ids(
                    conn,
                    self.engine,
                    self._alias,
                    versions,
                    require_alias=True,
                    wait_for_refresh=self.on_visible is not None,
                )
            if self.on_visible is not None:
                if result.conflicts or result.absent:
                    await self.engine.refresh(self._alias)
                await self.on_visible()
        except Exception:
            self._alias = None  # check the alias again on the retry (it may have gone)
            raise
        if self.observe_lag is not None:
            now = datetime.now(UTC)
            for event in events:
                self.observe_lag(max(0.0, (now - event.created_at).total_seconds()))
        log.debug(
            "search.applied",
            events=len(events),
            indexed=result.indexed,
            deleted=result.deleted,
            conflicts=result.conflicts,
        )
        return result
