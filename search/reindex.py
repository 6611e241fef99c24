"""Rebuild the product index from Postgres with no downtime and no lost write.

1. Create a new versioned index with refresh off and no replicas.
2. T0 = now(); wait until every transaction that started before T0 has ended, so any
   write not visible to the load snapshot has `updated_at >= T0` (`updated_at = now()`
   is the writer's transaction start).
3. Bulk-load every searchable row through a server-side cursor, in batches.
4. Catch-up 1 (T1 taken first, same wait): re-read rows with `updated_at >= T0` and write
   them with external versions; a soft delete bumps version and updated_at, so it is
   covered too.
5. Restore refresh/replicas, refresh, and swap the alias in one `_aliases` call.
6. Catch-up 2 (T2 taken after the swap, same wait): re-read rows with
   `updated_at >= T1`. Until the swap the live consumer wrote to the old index; any
   change it may have sent there is re-applied here. Changes after T2 are delivered by
   the consumer to the alias, which now points at the new index.
7. Delete the old indices, refresh, and run `on_visible` (the search cache's
   generation bump: no answer cached from the old index is read again).
External versions make every overlap harmless: a row written twice keeps its newest
version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from search.engine import SearchEngine
from search.index_admin import alias_name, create_index, finish_bulk_load, new_index_name
from search.sync import ROW_COLUMNS, SyncResult, apply_operations, bulk_operations
from storage import locks

log = structlog.get_logger()

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]

BATCH_SIZE = 1000
OLD_TRANSACTIONS_TIMEOUT_S = 10.0


class ReindexInProgress(Exception):
    def __init__(self, alias: str) -> None:
        super().__init__(f"another reindex of {alias} is running")


@dataclass(frozen=True)
class ReindexReport:
    index: str
    previous: list[str]
    loaded: int
    caught_up: int
    seconds: float


async def wait_for_older_transactions(
    pg: PgPool, since: datetime, timeout_s: float = OLD_TRANSACTIONS_TIMEOUT_S
) -> bool:
    """Wait until no other transaction of this database started before `since`.
    Returns False (and logs) on timeout; the reconcile job repairs anything missed."""
    deadline = time.monotonic() + timeout_s
    while True:
        # a fresh pool connection per poll: holding one would keep OUR transaction open,
        # and a second reindex (or any waiter like us) would then wait for it
        async with pg.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
                " AND xact_start < %s",
                (since,),
            )
            row = await cur.fetchone()
        if row is None or row["n"] == 0:
            return True
        if time.monotonic() > deadline:
            log.warning("search.reindex.old_transactions_timeout", open=row["n"])
            return False
        await asyncio.sleep(0.05)


async def db_now(pg: PgPool) -> datetime:
    async with pg.connection() as conn:
        cur = await conn.execute("SELECT now() AS now")
        row = await cur.fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now


async def bulk_load(pg: PgPool, engine: SearchEngine, index: str, batch_size: int) -> int:
    """Every searchable row, streamed through a server-side cursor in one snapshot."""
    loaded = 0
    async with pg.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        async with conn.cursor(name="search_reindex") as cur:
            await cur.execute(
                f"SELECT {ROW_COLUMNS} FROM products"
                " WHERE deleted_at IS NULL AND status = 'active' ORDER BY id"
            )
            # one bulk request in flight while the next batch is read and built
            in_flight: asyncio.Task[SyncResult] | None = None
            try:
                while rows := await cur.fetchmany(batch_size):
                    ops = bulk_operations(index, rows)
                    if in_flight is not None:
                        loaded += (await in_flight).indexed
                    in_flight = asyncio.create_task(apply_operations(engine, ops))
                if in_flight is not None:
                    loaded += (await in_flight).indexed
                    in_flight = None
            finally:
                if in_flight is not None:
                    in_flight.cancel()
                    with contextlib.suppress(BaseException):
                        await in_flight
    return loaded


async def catch_up(
    pg: PgPool, engine: SearchEngine, index: str, since: datetime, batch_size: int
) -> int:
    """Re-apply every row (deleted or not) changed at or after `since`."""
    applied = 0
    last_id = 0
    while True:
        async with pg.connection() as conn:
            cur = await conn.execute(
                f"SELECT {ROW_COLUMNS} FROM products"
                " WHERE updated_at >= %s AND id > %s ORDER BY id LIMIT %s",
                (since, last_id, batch_size),
            )
            rows = await cur.fetchall()
        if not rows:
            return applied
        result: SyncResult = await apply_operations(engine, bulk_operations(index, rows))
        applied += result.indexed + result.deleted + result.conflicts
        last_id = rows[-1]["id"]


async def reindex(
    pg: PgPool,
    engine: SearchEngine,
    prefix: str,
    *,
    batch_size: int = BATCH_SIZE,
    replicas: int = 0,
    on_visible: Callable[[], Awaitable[object]] | None = None,
) -> ReindexReport:
    alias = alias_name(prefix)
    async with pg.connection() as lock_conn:
        # one rebuild per alias at a time: a second one would swap the first one away
        async with lock_conn.transaction():
            got = await locks.try_session_lock(lock_conn, f"search-reindex:{alias}")
        if not got:
            raise ReindexInProgress(alias)
        try:
            report = await _reindex(pg, engine, prefix, batch_size=batch_size, replicas=replicas)
        finally:
            async with lock_conn.transaction():
                await locks.session_unlock(lock_conn, f"search-reindex:{alias}")
    if on_visible is not None:
        await on_visible()
    return report


async def _reindex(
    pg: PgPool, engine: SearchEngine, prefix: str, *, batch_size: int, replicas: int
) -> ReindexReport:
    started = time.perf_counter()
    alias = alias_name(prefix)
    index = new_index_name(prefix)
    await create_index(engine, index, bulk_load=True)
    try:
        t0 = await db_now(pg)
        await wait_for_older_transactions(pg, t0)
        loaded = await bulk_load(pg, engine, index, batch_size)
        log.info("search.reindex.loaded", index=index, docs=loaded)

        t1 = await db_now(pg)
        await wait_for_older_transactions(pg, t1)
        caught_up = await catch_up(pg, engine, index, t0, batch_size)
        await finish_bulk_load(engine, index, replicas=replicas)

        previous = await engine.alias_targets(alias)
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": alias}} for old in previous
        ]
        actions.append({"add": {"index": index, "alias": alias}})
        await engine.update_aliases(actions)
        log.info("search.reindex.swapped", alias=alias, index=index, previous=previous)

        t2 = await db_now(pg)
        await wait_for_older_transactions(pg, t2)
        caught_up += await catch_up(pg, engine, index, t1, batch_size)
    except BaseException:
        # the alias never pointed at the new index unless the swap succeeded; a failed
        # rebuild leaves the live index untouched (the half-built one is removed)
        await _drop_if_not_live(engine, alias, index)
        raise
    await engine.delete_indices([old for old in previous if old != index])
    await engine.refresh(index)
    return ReindexReport(index, previous, loaded, caught_up, time.perf_counter() - started)


async def _drop_if_not_live(engine: SearchEngine, alias: str, index: str) -> None:
    try:
        if index not in await engine.alias_targets(alias):
            await engine.delete_indices([index])
    except Exception:
        log.warning("search.reindex.cleanup_failed", index=index)
