"""Worker wiring of product search: the "search" outbox consumer and the reconcile job.

`search/` cannot import `app/`, so the metrics are handed to it here as callbacks.
"""

from __future__ import annotations

import asyncio
from functools import partial

import structlog

from app.metrics import (
    SEARCH_COMMIT_TO_SEARCHABLE,
    SEARCH_DRIFT,
    SEARCH_RECONCILE_RUNS,
)
from app.stores import Stores, bump_search_generation
from kit.periodic import run_every
from search.consumer import SearchIndexConsumer
from search.reconcile import DriftReport, reconcile
from storage import locks

log = structlog.get_logger()

RECONCILE_INTERVAL_S = 600.0
# One reconcile at a time across every worker replica (pg_try_advisory_lock key).
RECONCILE_LOCK = "search-reconcile"


def search_consumer(stores: Stores) -> SearchIndexConsumer:
    return SearchIndexConsumer(
        stores.pg,
        stores.search,
        stores.settings.search_index_prefix,
        observe_lag=SEARCH_COMMIT_TO_SEARCHABLE.observe,
        on_visible=partial(bump_search_generation, stores.search_cache),
    )


def export_drift(report: DriftReport) -> None:
    SEARCH_DRIFT.labels("missing").set(report.missing)
    SEARCH_DRIFT.labels("stale").set(report.stale)
    SEARCH_DRIFT.labels("extra").set(report.extra)
    SEARCH_RECONCILE_RUNS.inc()


async def reconcile_once(stores: Stores) -> DriftReport | None:
    """Run one reconcile unless another worker holds the lock; export the drift found."""
    async with stores.pg.connection() as conn:
        if not await locks.try_session_lock(conn, RECONCILE_LOCK):
            return None
        try:
            report = await reconcile(
                stores.pg,
                stores.search,
                stores.settings.search_index_prefix,
                on_visible=partial(bump_search_generation, stores.search_cache),
            )
        finally:
            await locks.session_unlock(conn, RECONCILE_LOCK)
    export_drift(report)
    return report


async def reconcile_task(stores: Stores, stop: asyncio.Event) -> None:
    """Every RECONCILE_INTERVAL_S (the first after one interval): compare Postgres with
    the index and repair."""
    await run_every(
        "search-reconcile",
        lambda: RECONCILE_INTERVAL_S,  # read each round: tests shorten it
        stop,
        lambda: reconcile_once(stores),
        wait_first=True,
    )
