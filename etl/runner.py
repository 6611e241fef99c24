"""The copy engine: Postgres -> a new DuckDB snapshot file -> atomic publish.

One run:
1. take the ETL advisory lock (else `AlreadyRunning`), mark runs left 'running' by a dead
   process as 'abandoned', record the new run;
2. make sure every declared table has its change-log triggers (installing them forces a
   full copy of that table);
3. take the watermark: Postgres' current snapshot (its xmin = the oldest transaction
   still running), before reading anything;
4. copy the published snapshot to `snapshot-<run>.duckdb.tmp` (or start empty for a full
   refresh) and, in ONE DuckDB transaction, per table: a full copy when needed (first
   run, new triggers, source columns changed, `--full`), else delete the keys changed
   since the table's watermark and re-insert their current rows (a deleted row simply
   has no current row); a backfill also rewrites a time range; then the star schema;
5. checkpoint, rename, publish (atomic link swap); only THEN commit the watermark and the
   run's success in Postgres, and prune the change log below the watermark's xmin.

Changes to apply = change-log keys with txid >= the last watermark's xmin whose
transaction the last watermark's snapshot did not see as committed.

A crash anywhere before 5 leaves the published snapshot and the watermarks as they were;
the next run redoes the work (applying a change is idempotent). After a crash between the
publish and the Postgres commit, the published file is not the one the last successful
run recorded, so the next run copies every table in full.

Data moves Postgres -> DuckDB through DuckDB's postgres extension (binary COPY inside
DuckDB, no Python per row); bench/analytics.py measured it against psycopg COPY -> Arrow.

Every `timestamp with time zone` column lands in the copy as a naive UTC `TIMESTAMP`
(the same instant; see `_landed`): bucketing by day or month is then native arithmetic in
DuckDB instead of ICU time-zone calendar work: the two time-bucketing benchmark queries
ran 2.7x and 5.7x faster on the same data (docs/benchmarks.md).
All timestamps in the analytical copy are therefore UTC.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import structlog

from analytics.duck import SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX, AnalyticsStore, NoSnapshot
from analytics.lake import LakeConfig, LakeStore
from etl import engine, tracking
from etl.star import build_star_schema
from etl.tables import Configuration, TableSpec
from etl.tracking import Conn, SourceColumn

log = structlog.get_logger()

Kind = Literal["full", "incremental", "backfill"]


class AlreadyRunning(RuntimeError):
    """Another ETL run holds the lock."""


@dataclass(frozen=True)
class EtlConfig:
    database_url: str
    schema: str
    duckdb_path: Path
    configuration: Configuration
    snapshot_grace_s: float = 300.0
    threads: int = 2
    memory_limit: str = "1GB"
    engine_max_runs: int = 0  # runs one DuckDB writer engine serves (0: kept; etl/engine.py)
    # test hook: sleep after each table is loaded, so a test can kill a run mid-load
    pause_after_table_s: float = 0.0
    # test hook (lake): sleep after the lake commit, before the run is recorded in Postgres
    pause_after_commit_s: float = 0.0
    # set: the copy is a DuckLake (catalog in Postgres, Parquet on S3) instead of the
    # snapshot files at `duckdb_path` (etl/lakehouse.py)
    lake: LakeConfig | None = None


@dataclass
class RunHandle:
    """A started run: its id and the connection that holds the lock."""

    run_id: int
    kind: Kind
    conn: Conn
    backfill: tuple[datetime, datetime] | None = None


@dataclass
class RunResult:
    run_id: int
    kind: Kind
    status: str
    rows: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    snapshot: str | None = None
    extracted_at: float | None = None  # epoch seconds: the data is at least this fresh
    error: str | None = None
    # where the run's time went, in seconds: each table's load, then "commit" (COMMIT and
    # CHECKPOINT of the snapshot file); the rest of duration_s is bookkeeping and setup
    seconds: dict[str, float] = field(default_factory=dict)


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


TIMESTAMPTZ = "timestamp with time zone"

# columns of a change set (`EtlJob._changed_rows_sql`) besides the table's own
CHANGED_KEY_PREFIX = "_etl_k_"
PRESENT = "_etl_present"


def _landed(column: SourceColumn, prefix: str = "") -> str:
    """The DuckDB select expression that lands `column` in the copy.

    timestamptz becomes a naive UTC TIMESTAMP: rebuilt from its epoch microseconds, pure
    integer arithmetic that neither ICU nor the session time zone takes part in (a
    `timezone('UTC', x)` or a cast cost 1.3-2.2x more at load time, measured).
    """
    ref = f"{prefix}{_q(column.name)}"
    if column.pg_type == TIMESTAMPTZ:
        return f"make_timestamp(epoch_us({ref})) AS {_q(column.name)}"
    return ref


def _landed_type(column: SourceColumn) -> str | None:
    """The DuckDB type the copy must have for `column`, where the ETL fixes it."""
    return "TIMESTAMP" if column.pg_type == TIMESTAMPTZ else None


# A string column with more distinct values than this (Postgres' estimate) is stored
# uncompressed. DuckDB's dictionary encoding (FSST is off altogether, etl/engine.py) was
# most of the CPU of building the file: order_lines' sku and name (5,000 distinct values
# in 1M rows) took a full load's build from ~0.5 to ~0.9-1.0 core-s. Strings with few
# values (status, currency, country, category) keep it: it is cheap for them, and the
# queries that filter or group on them ran 3-15% slower without it (docs/benchmarks.md).
DICTIONARY_MAX_DISTINCT = 1000


def _stored_plain(column: SourceColumn) -> bool:
    """Store `column` (if DuckDB makes it a VARCHAR) without compression.

    Unknown statistics (a table Postgres has not analyzed yet) leave the choice to
    DuckDB, as before.
    """
    return column.distinct is not None and column.distinct > DICTIONARY_MAX_DISTINCT


def _key_order(spec: TableSpec) -> str:
    """ORDER BY list of the table's key: the order rows are written in."""
    return ", ".join(_q(k) for k in spec.key)


# pg_stats.correlation of the key's first column from which the heap counts as already
# in key order (a shop that writes an order's lines with it: 1.0), so a full copy skips
# the sort: on 4M order lines in key order the unsorted copy queried as fast and loaded
# ~10% faster (docs/benchmarks.md, "Sorted by key").
HEAP_IN_KEY_ORDER = 0.98


def _needs_sort(spec: TableSpec, columns: list[SourceColumn]) -> bool:
    """Whether a full copy must sort the rows by key; unknown statistics: sort."""
    first = next((c for c in columns if c.name == spec.key[0]), None)
    return first is None or first.correlation is None or first.correlation < HEAP_IN_KEY_ORDER


def _utc_timestamp(moment: datetime) -> str:
    """A DuckDB TIMESTAMP literal for `moment` in UTC (a naive `moment` is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return f"CAST({_lit(moment.isoformat())} AS TIMESTAMP)"


class EtlJob:
    def __init__(self, config: EtlConfig) -> None:
        self.config = config
        self.store = AnalyticsStore(config.duckdb_path)  # the file backend's snapshots
        # what readers of this job's copy open: the lake, or the snapshot files
        self.reader: AnalyticsStore | LakeStore = (
            LakeStore(config.lake) if config.lake else self.store
        )

    # -- starting ---------------------------------------------------------------------

    def begin(
        self, kind: Kind = "incremental", backfill: tuple[datetime, datetime] | None = None
    ) -> RunHandle:
        """Take the lock and record the run; raises AlreadyRunning if another one is on."""
        if kind == "backfill" and backfill is None:
            raise ValueError("a backfill needs a time range")
        conn = tracking.connect(self.config.database_url, self.config.schema)
        try:
            if not tracking.try_lock(conn):
                raise AlreadyRunning("an ETL run is already in progress")
            abandoned = tracking.abandon_stale_runs(conn)
            run_id = tracking.start_run(conn, kind, self.run_options(backfill))
        except BaseException:
            conn.close()
            raise
        log.info("etl.started", run_id=run_id, kind=kind, abandoned=abandoned)
        return RunHandle(run_id, kind, conn, backfill)

    def run_options(self, backfill: tuple[datetime, datetime] | None) -> dict[str, Any]:
        """What `etl_runs.options` records of a run: the table set, a backfill range."""
        options: dict[str, Any] = {"configuration": self.config.configuration.name}
        if backfill:
            options["backfill"] = [backfill[0].isoformat(), backfill[1].isoformat()]
        return options

    def begin_requested(self) -> RunHandle | None:
        """Start the oldest run queued through the API (etl/requests.py), if there is one
        and no other run holds the lock; None otherwise (it waits for the next look)."""
        conn = tracking.connect(self.config.database_url, self.config.schema)
        try:
            if not tracking.has_queued(conn) or not tracking.try_lock(conn):
                conn.close()
                return None
            abandoned = tracking.abandon_stale_runs(conn)
            claimed = tracking.claim_queued(conn)
            if claimed is None:  # another worker started it between the two looks
                conn.close()
                return None
        except BaseException:
            conn.close()
            raise
        options = claimed["options"] or {}
        window = options.get("backfill")
        backfill = (
            (datetime.fromisoformat(window[0]), datetime.fromisoformat(window[1]))
            if window
            else None
        )
        kind: Kind = claimed["kind"]
        log.info("etl.started", run_id=claimed["id"], kind=kind, abandoned=abandoned)
        return RunHandle(int(claimed["id"]), kind, conn, backfill)

    def run(
        self, kind: Kind = "incremental", backfill: tuple[datetime, datetime] | None = None
    ) -> RunResult:
        return self.execute(self.begin(kind, backfill))

    # -- the work ---------------------------------------------------------------------

    def execute(self, handle: RunHandle) -> RunResult:
        """Do the run, then release the lock (closing its connection)."""
        started = time.monotonic()
        conn = handle.conn
        result = RunResult(handle.run_id, handle.kind, "running")
        try:
            self._execute(handle, result)
            result.status = "succeeded"
        except Exception as exc:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("etl.failed", run_id=handle.run_id)
            with contextlib.suppress(Exception):
                tracking.fail_run(conn, handle.run_id, result.error)
        finally:
            result.duration_s = time.monotonic() - started
            with contextlib.suppress(Exception):
                tracking.unlock(conn)
            conn.close()
        log.info(
            "etl.finished",
            run_id=result.run_id,
            status=result.status,
            rows=result.rows,
            duration_s=round(result.duration_s, 3),
        )
        return result

    def _execute(self, handle: RunHandle, result: RunResult) -> None:
        if self.config.lake is not None:
            from etl.lakehouse import execute_lake_run

            execute_lake_run(self, handle, result, self.config.lake)
            return
        conn, cfg = handle.conn, self.config
        tables = cfg.configuration.tables
        fresh = {t.name for t in tables if tracking.ensure_tracking(conn, t)}
        marks = tracking.watermarks(conn)
        mark, extracted_at = tracking.take_watermark(conn)
        tracking.record_progress(conn, handle.run_id, {}, mark)

        snap_dir = self.store.snapshot_dir
        snap_dir.mkdir(parents=True, exist_ok=True)
        for stale in snap_dir.glob("*.tmp*"):  # left by a crashed run; we hold the lock
            stale.unlink(missing_ok=True)
        final = snap_dir / f"{SNAPSHOT_PREFIX}{handle.run_id:08d}{SNAPSHOT_SUFFIX}"
        tmp = final.with_name(final.name + ".tmp")
        base = None
        if handle.kind != "full":
            with contextlib.suppress(NoSnapshot):
                base = self.store.current_snapshot()
            if base is not None and base.name != tracking.last_published(conn):
                # not the file the watermarks describe (restored by hand, or published by
                # a run that died before committing its watermarks): copy everything
                log.warning("etl.base_unknown", snapshot=base.name)
                base = None
        if base is not None:
            t0 = time.monotonic()
            shutil.copyfile(base, tmp)
            log.info("etl.base_copied", seconds=round(time.monotonic() - t0, 3))

        with engine.writer(
            tmp, cfg.database_url, cfg.threads, cfg.memory_limit, cfg.engine_max_runs
        ) as duck:
            duck.execute("BEGIN")

            def load(spec: TableSpec, columns: list[SourceColumn]) -> int:
                since = marks.get(spec.name)
                if (
                    handle.kind == "full"
                    or base is None
                    or spec.name in fresh
                    or since is None
                    or not self._same_columns(duck, spec.name, columns)
                ):
                    return self._copy_full(duck, spec, columns)
                return self._apply_incremental(duck, handle, spec, columns, since)

            self._load_tables(handle, result, mark, load)
            if cfg.configuration.star_schema:
                build_star_schema(duck)
            duck.execute(
                """CREATE OR REPLACE TABLE _etl_meta AS
                   SELECT ?::BIGINT AS run_id, ?::VARCHAR AS kind, ?::VARCHAR AS configuration,
                          ?::VARCHAR AS source_xmin, ?::DOUBLE AS extracted_at""",
                [handle.run_id, handle.kind, cfg.configuration.name, mark.snapshot, extracted_at],
            )
            t0 = time.monotonic()
            duck.execute("COMMIT")
            duck.execute(f"CHECKPOINT {engine.SNAPSHOT}")
            result.seconds["commit"] = time.monotonic() - t0
            log.info("etl.committed", seconds=round(result.seconds["commit"], 3))

        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self.store.publish(final)
        tracking.finish_run(
            conn, handle.run_id, result.rows, final.name, mark, [t.name for t in tables]
        )
        result.snapshot, result.extracted_at = final.name, extracted_at
        self.store.collect_garbage(cfg.snapshot_grace_s, keep=final)

    def _load_tables(
        self,
        handle: RunHandle,
        result: RunResult,
        mark: tracking.Watermark,
        load: Callable[[TableSpec, list[SourceColumn]], int],
    ) -> None:
        """Load each declared table with `load(spec, its source columns) -> rows`; record
        its rows and time, and the run's progress in Postgres, after each (both backends)."""
        conn = handle.conn
        for spec in self.config.configuration.tables:
            t0 = time.monotonic()
            n = load(spec, tracking.source_columns(conn, spec.name))
            result.rows[spec.name] = n
            result.seconds[spec.name] = time.monotonic() - t0
            log.info(
                "etl.table_loaded",
                table=spec.name,
                rows=n,
                seconds=round(result.seconds[spec.name], 3),
            )
            tracking.record_progress(conn, handle.run_id, result.rows, mark)
            if self.config.pause_after_table_s:
                time.sleep(self.config.pause_after_table_s)

    def _apply_incremental(
        self,
        duck: duckdb.DuckDBPyConnection,
        handle: RunHandle,
        spec: TableSpec,
        columns: list[SourceColumn],
        since: tracking.Watermark,
    ) -> int:
        """The keys changed since `since`; for a backfill also the run's time range."""
        indexed = tracking.key_is_indexed(handle.conn, spec.name, spec.key)
        n = self._apply_changes(duck, spec, columns, since, indexed)
        if handle.kind == "backfill" and handle.backfill and spec.backfill_predicate:
            n += self._rewrite_range(duck, spec, columns, handle.backfill)
        return n

    def _pg_table(self, name: str) -> str:
        return f"{_q(self.config.schema)}.{_q(name)}"

    @staticmethod
    def _same_columns(
        duck: duckdb.DuckDBPyConnection, table: str, columns: list[SourceColumn]
    ) -> bool:
        """The copy has the source's columns, in order, with the types the ETL lands.

        A type check catches a snapshot written before timestamptz landed as UTC
        TIMESTAMP (it is then copied in full once). `pragma_table_info` reads only this
        table (`duckdb_columns()` also enumerated the attached Postgres catalog).
        """
        try:
            rows = duck.execute(
                f"SELECT name, type FROM pragma_table_info({_lit('main.' + _q(table))})"
            ).fetchall()
        except duckdb.CatalogException:
            return False
        if [r[0] for r in rows] != [c.name for c in columns]:
            return False
        return all(_landed_type(c) in (None, r[1]) for c, r in zip(columns, rows, strict=True))

    def _pg_query(self, sql: str) -> str:
        """A DuckDB table expression that runs `sql` in Postgres (binary COPY)."""
        return f"postgres_query({_lit(engine.POSTGRES)}, {_lit(sql)})"

    def _copy_full(
        self,
        duck: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        columns: list[SourceColumn],
        compression: bool = True,
    ) -> int:
        """Recreate the table from the source; its string columns get their storage here.

        The table is declared column by column (types as DuckDB binds the source) so that
        strings with many distinct values can be declared uncompressed (`_stored_plain`).
        The choice lives in the table's catalog entry: rows that incremental runs append
        later are stored the same way.

        Rows are written in key order, so each row group holds one narrow key range
        (tight zone maps, order_lines grouped by order) whatever order the source heap
        is in. The queries got 1.2-1.3x faster; the full load was no slower at 1M order
        lines and ~10-20% slower at 4M (docs/benchmarks.md, "Sorted by key"). When
        Postgres' statistics say the heap is in key order already (`_needs_sort`), the
        parallel scan's ranges keep that order closely enough and the sort is skipped.
        Incremental runs append their rows (in key order too) after the existing ones;
        the next full refresh re-sorts. `compression=False` (the lake: Parquet chooses its
        own encodings) declares no compression.
        """
        cols = ", ".join(_landed(c) for c in columns)
        source = f"SELECT {cols} FROM {engine.POSTGRES}.{_q(self.config.schema)}.{_q(spec.name)}"
        plain = {c.name for c in columns if _stored_plain(c)}
        defs = ", ".join(
            f"{_q(name)} {kind}"
            + (
                " USING COMPRESSION uncompressed"
                if compression and kind == "VARCHAR" and name in plain
                else ""
            )
            for name, kind, *_ in duck.execute(f"DESCRIBE {source}").fetchall()
        )
        duck.execute(f"CREATE OR REPLACE TABLE {_q(spec.name)} ({defs})")
        order = f" ORDER BY {_key_order(spec)}" if _needs_sort(spec, columns) else ""
        row = duck.execute(f"INSERT INTO {_q(spec.name)} {source}{order}").fetchone()
        return int(row[0]) if row else 0

    def _changed_keys_sql(
        self, spec: TableSpec, columns: list[SourceColumn], since: tracking.Watermark
    ) -> str:
        types = {c.name: c.pg_type for c in columns}
        keys = ", ".join(f"(key->>{_lit(k)})::{types[k]} AS {_q(k)}" for k in spec.key)
        return (
            f"SELECT DISTINCT {keys} FROM {_q(self.config.schema)}.etl_changes "
            f"WHERE tbl = {_lit(spec.name)} AND txid >= {_lit(since.xmin)}::xid8 "
            f"AND NOT pg_visible_in_snapshot(txid, {_lit(since.snapshot)}::pg_snapshot)"
        )

    def _changed_rows_sql(
        self,
        spec: TableSpec,
        columns: list[SourceColumn],
        since: tracking.Watermark,
        indexed: bool,
    ) -> str:
        """ONE Postgres statement: each changed key once (as `_etl_k_<column>`) with the
        row Postgres has for it now, or NULLs and `_etl_present` NULL when it has none (a
        deleted row). One statement, so keys and rows come from one Postgres snapshot.

        With an index on the key (`indexed`), each key is looked up through it: the
        LATERAL subquery with `OFFSET 0` is not flattened, so Postgres cannot turn it into
        a hash join over the whole table (which its cost model picks for a change of 1 %
        spread over the table: the seq scan then follows the table, the probes follow
        the change). Without one (TPC-H's tables) the planner joins as it sees fit.
        """
        keys_sql = self._changed_keys_sql(spec, columns, since)
        keys = ", ".join(f"k.{_q(k)} AS {_q(CHANGED_KEY_PREFIX + k)}" for k in spec.key)
        cols = ", ".join(f"r.{_q(c.name)}" for c in columns)
        inner = ", ".join(f"t.{_q(c.name)}" for c in columns)
        match = " AND ".join(f"t.{_q(k)} = k.{_q(k)}" for k in spec.key)
        table = self._pg_table(spec.name)
        if indexed:
            rows = (
                f"LEFT JOIN LATERAL (SELECT true AS {PRESENT}, {inner} FROM {table} t"
                f" WHERE {match} OFFSET 0) r ON true"
            )
        else:
            rows = f"LEFT JOIN (SELECT true AS {PRESENT}, {inner} FROM {table} t) r ON " + (
                " AND ".join(f"r.{_q(k)} = k.{_q(k)}" for k in spec.key)
            )
        return f"SELECT {keys}, r.{PRESENT}, {cols} FROM ({keys_sql}) k {rows}"

    def _apply_changes(
        self,
        duck: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        columns: list[SourceColumn],
        since: tracking.Watermark,
        indexed: bool = False,
    ) -> int:
        """Delete every changed key from the copy, insert the rows Postgres has for them."""
        rows_sql = self._changed_rows_sql(spec, columns, since, indexed)
        duck.execute(
            f"CREATE OR REPLACE TEMP TABLE _etl_changed AS SELECT * FROM {self._pg_query(rows_sql)}"
        )
        try:
            changed = duck.execute("SELECT count(*) FROM _etl_changed").fetchone()
            if not changed or changed[0] == 0:
                return 0
            match = " AND ".join(
                f"{_q(spec.name)}.{_q(k)} = c.{_q(CHANGED_KEY_PREFIX + k)}" for k in spec.key
            )
            duck.execute(f"DELETE FROM {_q(spec.name)} USING _etl_changed c WHERE {match}")
            landed = ", ".join(_landed(c) for c in columns)
            row = duck.execute(
                f"INSERT INTO {_q(spec.name)} BY NAME SELECT {landed} FROM _etl_changed"
                f" WHERE {PRESENT} ORDER BY {_key_order(spec)}"
            ).fetchone()
            return int(row[0]) if row else 0
        finally:
            duck.execute("DROP TABLE IF EXISTS _etl_changed")

    def _rewrite_range(
        self,
        duck: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        columns: list[SourceColumn],
        window: tuple[datetime, datetime],
    ) -> int:
        assert spec.backfill_predicate is not None
        start, end = (m if m.tzinfo else m.replace(tzinfo=UTC) for m in window)
        pg_bounds = {  # a naive bound means UTC on both sides
            "start": f"CAST({_lit(start.isoformat())} AS timestamptz)",
            "end": f"CAST({_lit(end.isoformat())} AS timestamptz)",
        }
        # the copy holds UTC TIMESTAMPs: compare with the same instants in UTC
        duck_bounds = {"start": _utc_timestamp(window[0]), "end": _utc_timestamp(window[1])}
        duck_pred = spec.backfill_predicate.format(schema="main", **duck_bounds)
        pg_pred = spec.backfill_predicate.format(schema=_q(self.config.schema), **pg_bounds)
        duck.execute(f"DELETE FROM {_q(spec.name)} WHERE {duck_pred}")
        cols = ", ".join(_q(c.name) for c in columns)
        rows_sql = f"SELECT {cols} FROM {self._pg_table(spec.name)} WHERE {pg_pred}"
        landed = ", ".join(_landed(c) for c in columns)
        row = duck.execute(
            f"INSERT INTO {_q(spec.name)} BY NAME SELECT {landed} FROM {self._pg_query(rows_sql)}"
            f" ORDER BY {_key_order(spec)}"
        ).fetchone()
        return int(row[0]) if row else 0


def lock_is_held(database_url: str, schema: str) -> bool:
    """True while some process runs the ETL for `schema`."""
    with tracking.connect(database_url, schema) as conn:
        return tracking.is_locked_elsewhere(conn)
