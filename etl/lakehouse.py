"""An ETL run into the DuckLake: the changed rows as ONE lake commit, watermark inside it.

Order of one run (the lock is held, the run recorded, by `EtlJob.begin`):
1. install missing change-log triggers (a table that got them now is copied in full);
2. take the new watermark (Postgres' current snapshot) before reading anything;
3. in ONE DuckDB transaction on the lake: read the last watermark from `_etl_meta` (the
   lake's own table, so the watermark the run starts from is exactly the one committed
   with the data it describes), apply the changed keys per table (DELETE them, INSERT the
   rows Postgres has for them now: new Parquet files and delete files, never a rewrite
   of the table), the star schema, and the new `_etl_meta` row with the new watermark;
4. COMMIT: DuckLake writes the catalog in one Postgres transaction: a new snapshot, or
   nothing. Readers see the whole run or none of it;
5. only then, in Postgres: the run's success and pruning the change log below the new
   watermark's xmin. Both are harmless to lose: change-log rows below the committed
   watermark are never applied again, and a run that died between 4 and 5 is found by
   the next one (`record_committed`: the `_etl_meta` it reads names the run) and
   recorded as the success it was, with its snapshot and commit time.

Killed anywhere before 4 (kill -9 included): the lake's latest snapshot and its watermark
are as before; the Parquet files the run had written are referenced by no snapshot and
are removed by maintenance (`ducklake_delete_orphaned_files`); the next run redoes the
work from the same watermark. There is no second copy of the watermark that could
disagree with the lake.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import duckdb
import structlog

from analytics.lake import LakeConfig
from etl import engine, tracking
from etl.star import build_star_schema
from etl.tables import TableSpec
from etl.tracking import SourceColumn, Watermark

if TYPE_CHECKING:
    from etl.runner import EtlJob, RunHandle, RunResult

log = structlog.get_logger()

META_DDL = """CREATE TABLE IF NOT EXISTS _etl_meta (
    run_id BIGINT, kind VARCHAR, configuration VARCHAR,
    source_xmin VARCHAR, watermark_xmin VARCHAR, extracted_at DOUBLE)"""


def lake_watermark(
    duck: duckdb.DuckDBPyConnection, configuration: str
) -> tuple[Watermark | None, int | None]:
    """The watermark and run id the lake's current snapshot was committed with (None
    for an empty lake, or one written by another configuration)."""
    try:
        row = duck.execute(
            "SELECT watermark_xmin, source_xmin, run_id, configuration FROM _etl_meta"
        ).fetchone()
    except duckdb.CatalogException:
        return None, None
    if row is None or row[0] is None or row[3] != configuration:
        return None, None
    return Watermark(str(row[0]), str(row[1])), int(row[2])


# The days the shop's orders span, in UTC, from Postgres: two probes of the index on
# orders(created_at), so the check costs the same at any table size (reading min/max
# over the lake's `orders` read the column from every Parquet file: 0.40 s of a 1.9 s
# empty run at 4,000 lines, and growing with the table; docs/benchmarks.md).
STAR_VIEWS = ("dim_product", "dim_customer", "fact_order_lines")
ORDER_DAYS_SQL = """SELECT coalesce((min(created_at) AT TIME ZONE 'UTC')::date,
                                    (now() AT TIME ZONE 'UTC')::date) AS lo,
                           coalesce((max(created_at) AT TIME ZONE 'UTC')::date,
                                    (now() AT TIME ZONE 'UTC')::date) AS hi
                      FROM orders"""


def _star_is_current(duck: duckdb.DuckDBPyConnection, conn: tracking.Conn) -> bool:
    """The star schema exists and dim_date spans the days of the shop's orders.

    The span is read from Postgres after the run loaded the orders (index probes, see
    ORDER_DAYS_SQL), and compared with dim_date's, which the lake keeps as a rebuild made
    it. They differ when orders of a new first or last day arrived (or the first or last
    day's orders were all deleted): then the star is rebuilt, from the lake's own rows.
    A write racing the run can make the two disagree for one run; the next run's change
    set brings the lake to Postgres again and the check rebuilds then.
    """
    try:
        # binding the views looks them up in the lake only (duckdb_views() also listed
        # the attached Postgres catalog: most of the 0.25-0.33 s this check took)
        for view in STAR_VIEWS:
            duck.execute(f"SELECT * FROM {view} LIMIT 0")
        row = duck.execute("SELECT min(date_key), max(date_key) FROM dim_date").fetchone()
    except duckdb.CatalogException:
        return False
    days = conn.execute(ORDER_DAYS_SQL).fetchone()
    return row is not None and days is not None and (row[0], row[1]) == (days["lo"], days["hi"])


def commit_message(run_id: int, kind: str) -> str:
    return f"run {run_id} ({kind})"


def record_committed(
    conn: tracking.Conn,
    duck: duckdb.DuckDBPyConnection,
    run_id: int,
    mark: Watermark,
    tables: list[str],
) -> None:
    """The run that wrote the lake's current `_etl_meta` committed: if its process died
    before recording that in Postgres (the next run's `begin` marked it 'abandoned'),
    record it now as succeeded, with the snapshot its commit made (found by its commit
    message; maintenance may have added snapshots since) and the commit's time."""
    row = duck.execute(
        f"""SELECT snapshot_id, epoch(snapshot_time) FROM ducklake_snapshots({engine.SNAPSHOT!r})
             WHERE commit_message LIKE ? ORDER BY snapshot_id DESC LIMIT 1""",
        [f"run {run_id} (%"],
    ).fetchone()
    if row is None:
        return
    if tracking.record_committed_run(conn, run_id, f"lake@{row[0]}", row[1], mark, tables):
        log.warning("etl.committed_run_recorded", run_id=run_id, snapshot=row[0])


def ensure_bucket(lake: LakeConfig) -> None:
    from storage.blobs import create_minio
    from storage.blobs import ensure_bucket as make

    make(
        create_minio(
            lake.s3_endpoint,
            access_key=lake.s3_access_key,
            secret_key=lake.s3_secret_key,
            secure=lake.s3_secure,
            region=lake.s3_region,
        ),
        lake.bucket,
    )


class _Phases:
    """Where a lake run's time goes, into `RunResult.seconds` next to the tables' loads:
    setup (triggers, watermark, grants, bucket), attach (the writer), watermark (read
    from the lake), star, meta (the `_etl_meta` row), commit, detach."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.t0 = time.monotonic()

    def start(self) -> None:
        self.t0 = time.monotonic()

    def end(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = now - self.t0
        self.t0 = now


def execute_lake_run(job: EtlJob, handle: RunHandle, result: RunResult, lake: LakeConfig) -> None:
    conn, cfg = handle.conn, job.config
    tables = cfg.configuration.tables
    phase = _Phases(result.seconds)
    fresh = {t.name for t in tables if tracking.ensure_tracking(conn, t)}
    mark, extracted_at = tracking.take_watermark(conn)
    tracking.record_progress(conn, handle.run_id, {}, mark)
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{lake.metadata_schema}"')
    if lake.reader_role:
        tracking.grant_catalog_read(conn, lake.metadata_schema, lake.reader_role)
    ensure_bucket(lake)
    phase.end("setup")

    with engine.lake_writer(
        lake, cfg.database_url, cfg.threads, cfg.memory_limit, cfg.engine_max_runs
    ) as duck:
        phase.end("attach")
        duck.execute("BEGIN")
        since, last_run = lake_watermark(duck, cfg.configuration.name)
        if since is not None and last_run is not None:
            record_committed(conn, duck, last_run, since, [t.name for t in tables])
        copied: set[str] = set()
        phase.end("watermark")

        def load(spec: TableSpec, columns: list[SourceColumn]) -> int:
            if (
                handle.kind == "full"
                or since is None
                or spec.name in fresh
                or not job._same_columns(duck, spec.name, columns)
            ):
                copied.add(spec.name)
                return job._copy_full(duck, spec, columns, compression=False)
            return job._apply_incremental(duck, handle, spec, columns, since)

        job._load_tables(handle, result, mark, load)
        phase.start()
        if cfg.configuration.star_schema and (
            since is None or copied or not _star_is_current(duck, conn)
        ):
            # views name the tables they read; a table recreated in full, a first run
            # or dates beyond dim_date's range rebuild them. Else nothing to write: an
            # unchanged star costs an incremental run no catalog change and no file
            build_star_schema(duck)
        phase.end("star")
        duck.execute(META_DDL)
        duck.execute("DELETE FROM _etl_meta")
        duck.execute(
            "INSERT INTO _etl_meta VALUES (?, ?, ?, ?, ?, ?)",
            [
                handle.run_id,
                handle.kind,
                cfg.configuration.name,
                mark.snapshot,
                mark.xmin,
                extracted_at,
            ],
        )
        duck.execute(
            "CALL ducklake_set_commit_message(?, 'polyshop-etl', ?)",
            [engine.SNAPSHOT, commit_message(handle.run_id, handle.kind)],
        )
        phase.end("meta")
        duck.execute("COMMIT")
        phase.end("commit")
        if cfg.pause_after_commit_s:  # test hook: a kill -9 here is what the next run mends
            time.sleep(cfg.pause_after_commit_s)
        row = duck.execute(
            f"SELECT id FROM ducklake_current_snapshot('{engine.SNAPSHOT}') t(id)"
        ).fetchone()
        snapshot_id = int(row[0]) if row else 0
        log.info(
            "etl.committed",
            snapshot=snapshot_id,
            previous_run=last_run,
            seconds=round(result.seconds["commit"], 3),
        )
        phase.start()
    phase.end("detach")

    name = f"lake@{snapshot_id}"
    tracking.finish_lake_run(conn, handle.run_id, result.rows, name, mark, [t.name for t in tables])
    result.snapshot, result.extracted_at = name, extracted_at
