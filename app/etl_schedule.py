"""Glue between the settings/metrics of the app and the ETL engine (etl/): the job
factory, metric recording, and the worker's cron task."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from croniter import croniter

from analytics.duck import AnalyticsStore
from analytics.lake import LakeStore
from app.metrics import ETL_DATA_AGE, ETL_LAST_SUCCESS, ETL_ROWS, ETL_RUN_DURATION
from app.settings import Settings
from app.stores import Stores, lake_config
from etl.maintenance import MaintenanceLocked, MaintenanceResult, maintain
from etl.runner import AlreadyRunning, EtlConfig, EtlJob, RunResult
from etl.tables import CONFIGURATIONS
from kit.periodic import run_every

log = structlog.get_logger()

# How often a worker looks for runs queued through the API.
ETL_REQUEST_POLL_S = 1.0


def etl_job(settings: Settings) -> EtlJob:
    return EtlJob(
        EtlConfig(
            database_url=settings.database_url,
            schema=settings.database_schema,
            duckdb_path=settings.duckdb_path,
            configuration=CONFIGURATIONS[settings.etl_tables],
            snapshot_grace_s=settings.etl_snapshot_grace_s,
            threads=settings.etl_threads,
            memory_limit=settings.etl_memory_limit,
            engine_max_runs=settings.etl_engine_max_runs,
            pause_after_table_s=settings.etl_test_pause_s,
            pause_after_commit_s=settings.etl_test_pause_after_commit_s,
            lake=lake_config(settings),
        )
    )


def watch_data_age(store: AnalyticsStore | LakeStore) -> None:
    """Export the published snapshot's data age, computed at scrape time."""
    ETL_DATA_AGE.set_function(store.data_age_s)


def record_metrics(result: RunResult) -> None:
    ETL_RUN_DURATION.labels(result.kind, result.status).observe(result.duration_s)
    if result.status == "succeeded":
        ETL_LAST_SUCCESS.set_to_current_time()
        for table, rows in result.rows.items():
            ETL_ROWS.labels(table).inc(rows)


async def etl_schedule_task(stores: Stores, stop: asyncio.Event) -> None:
    """Run the ETL on `settings.etl_cron`. Every worker runs this loop; the advisory lock
    lets exactly one of them copy at a time (the others log and wait for the next tick)."""
    settings = stores.settings
    watch_data_age(stores.analytics)
    if not settings.etl_schedule_enabled:
        await stop.wait()
        return
    job = etl_job(settings)
    ticks = croniter(settings.etl_cron, datetime.now(UTC))

    def to_next_tick() -> float:
        due: datetime = ticks.get_next(datetime)
        return (due - datetime.now(UTC)).total_seconds()

    async def run_once() -> None:
        try:
            result = await asyncio.to_thread(job.run)
        except AlreadyRunning:
            log.info("etl.schedule_skipped", reason="another run holds the lock")
            return
        record_metrics(result)

    await run_every("etl-schedule", to_next_tick, stop, run_once, wait_first=True)


async def etl_requests_task(stores: Stores, stop: asyncio.Event) -> None:
    """Start the runs queued through `POST /etl/runs`, one at a time, in a thread (the
    ETL is synchronous DuckDB and psycopg work); look for one every second."""
    job = etl_job(stores.settings)

    async def start_queued() -> bool:
        handle = await asyncio.to_thread(job.begin_requested)
        if handle is None:
            return False
        record_metrics(await asyncio.to_thread(job.execute, handle))
        return True  # another may be queued already

    await run_every("etl-requests", ETL_REQUEST_POLL_S, stop, start_queued, again_at_once=bool)


def run_lake_maintenance(settings: Settings) -> MaintenanceResult:
    """One lake maintenance pass with the settings' retention and grace."""
    lake = lake_config(settings)
    if lake is None:
        raise ValueError("the analytics backend is not ducklake")
    return maintain(
        settings.database_url,
        settings.database_schema,
        lake,
        retention_s=settings.lake_snapshot_retention_h * 3600,
        grace_s=settings.etl_snapshot_grace_s,
        threads=settings.etl_threads,
        memory_limit=settings.etl_memory_limit,
    )


async def lake_maintenance_task(stores: Stores, stop: asyncio.Event) -> None:
    """On `settings.lake_maintenance_cron`: expire snapshots, compact and delete files
    (etl/maintenance.py). Idle unless the backend is ducklake; under the ETL's lock, so a
    tick that meets a run (or another worker's pass) is skipped."""
    settings = stores.settings
    if settings.analytics_backend != "ducklake" or not settings.etl_schedule_enabled:
        await stop.wait()
        return
    ticks = croniter(settings.lake_maintenance_cron, datetime.now(UTC))

    def to_next_tick() -> float:
        due: datetime = ticks.get_next(datetime)
        return (due - datetime.now(UTC)).total_seconds()

    async def run_once() -> None:
        try:
            await asyncio.to_thread(run_lake_maintenance, settings)
        except MaintenanceLocked:
            log.info("lake.maintenance_skipped", reason="the ETL lock is held")

    await run_every("lake-maintenance", to_next_tick, stop, run_once, wait_first=True)
