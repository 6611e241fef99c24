"""Worker wiring of product search: the "search" outbox consumer and the reconcile job.

`search/` cannot import `app/`, so the metrics are handed to it here as callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from app.metrics import (
    SEARCH_COMMIT_TO_SEARCHABLE,
    SEARCH_DRIFT,
    SEARCH_RECONCILE_RUNS,
)
from app.stores import Stores
from search.consumer import SearchIndexConsumer
from search.reconcile import DriftReport, reconcile
from storage.errors import StoreUnavailable

log = structlog.get_logger()

RECONCILE_INTERVAL_S = 600.0
# One reconcile at a time across every worker replica (pg_try_advisory_lock key).
RECONCILE_LOCK_KEY = "polyshop:search-reconcile"


def search_consumer(stores: Stores) -> SearchIndexConsumer:
    return SearchIndexConsumer(
        stores.pg,
        stores.search,
        stores.settings.search_index_prefix,
        observe_lag=SEARCH_COMMIT_TO_SEARCHABLE.observe,
    )


def export_drift(report: DriftReport) -> None:
    SEARCH_DRIFT.labels("missing").set(report.missing)
    SEARCH_DRIFT.labels("stale").set(report.stale)
    SEARCH_DRIFT.labels("extra").set(report.extra)
    SEARCH_RECONCILE_RUNS.inc()


async def reconcile_once(stores: Stores) -> DriftReport | None:
    """Run one reconcile unless another worker holds the lock; export the drift found."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s)) AS got", (RECONCILE_LOCK_KEY,)
        )
        row = await cur.fetchone()
        if row is None or not row["got"]:
            return None
        try:
            report = await reconcile(stores.pg, stores.search, stores.settings.search_index_prefix)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (RECONCILE_LOCK_KEY,))
    export_drift(report)
    return report


async def reconcile_task(stores: Stores, stop: asyncio.Event) -> None:
    """Every RECONCILE_INTERVAL_S: compare Postgres with the index and repair."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RECONCILE_INTERVAL_S)
        if stop.is_set():
            return
        try:
            await reconcile_once(stores)
        except StoreUnavailable as exc:
            log.warning("search.reconcile_skipped", reason=str(exc)[:200])
