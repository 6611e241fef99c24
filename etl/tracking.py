"""Postgres side of the ETL: the run lock, change-tracking triggers, source catalog,
watermarks and the run history (`etl_runs`). Synchronous psycopg: the ETL runs in a
thread or a CLI process, never on the event loop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from etl.tables import TableSpec
from storage import locks

Conn = psycopg.Connection[dict[str, Any]]

# One ETL at a time per schema, across every process: a session advisory lock that
# Postgres releases by itself if the holder dies (kill -9 included).
LOCK_KEY_SQL = locks.KEY_SQL.replace("%s", "'etl'")


@dataclass(frozen=True)
class SourceColumn:
    name: str
    pg_type: str  # format_type(): 'bigint', 'character(3)', ...
    # distinct values Postgres' statistics estimate (pg_stats); None before an ANALYZE
    distinct: float | None = None
    # pg_stats.correlation: 1.0 when the heap is in this column's order; None if unknown
    correlation: float | None = None


def try_lock(conn: Conn) -> bool:
    row = conn.execute(f"SELECT pg_try_advisory_lock({LOCK_KEY_SQL}) AS ok").fetchone()
    return bool(row and row["ok"])


def unlock(conn: Conn) -> None:
    conn.execute(f"SELECT pg_advisory_unlock({LOCK_KEY_SQL})")


# Whether some session holds the lock, read from pg_locks without taking it (a probe that
# took the lock, even briefly, could make a concurrent run fail to start).
RUNNING_SQL = f"""SELECT EXISTS (
    SELECT 1 FROM pg_locks l, (SELECT {LOCK_KEY_SQL} AS k) s
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = ((s.k >> 32) & 4294967295)::oid
       AND l.objid = (s.k & 4294967295)::oid) AS running"""


def is_locked_elsewhere(conn: Conn) -> bool:
    """True while a session holds the ETL lock."""
    row = conn.execute(RUNNING_SQL).fetchone()
    return bool(row and row["running"])


def current_schema(conn: Conn) -> str:
    row = conn.execute("SELECT current_schema() AS s").fetchone()
    assert row is not None
    return str(row["s"])


def source_columns(conn: Conn, table: str) -> list[SourceColumn]:
    # n_distinct < 0 is a fraction of the rows (it scales with the table)
    rows = conn.execute(
        """SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS pg_type,
                  CASE WHEN s.n_distinct >= 0 THEN s.n_distinct
                       ELSE -s.n_distinct * greatest(c.reltuples, 0) END AS distinct_values,
                  s.correlation
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             LEFT JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = c.relname
                                 AND s.attname = a.attname AND NOT s.inherited
            WHERE a.attrelid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident(%s))
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        (table,),
    ).fetchall()
    if not rows:
        raise LookupError(f"source table {table!r} not found in schema {current_schema(conn)}")
    return [
        SourceColumn(
            r["name"],
            r["pg_type"],
            None if r["distinct_values"] is None else float(r["distinct_values"]),
            None if r["correlation"] is None else float(r["correlation"]),
        )
        for r in rows
    ]


def key_is_indexed(conn: Conn, table: str, key: tuple[str, ...]) -> bool:
    """Whether an index of `table` starts with exactly the key's columns (in any order),
    so that one key is found by an index probe (`EtlJob._changed_rows_sql`)."""
    row = conn.execute(
        """SELECT EXISTS (
             SELECT 1 FROM pg_index i
              WHERE i.indrelid
                    = to_regclass(quote_ident(current_schema()) || '.' || quote_ident(%s))
                AND i.indisvalid AND i.indpred IS NULL
                AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                       FROM unnest((i.indkey::int2[])[0:cardinality(%s::text[]) - 1]) AS c(n)
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = c.n)
                    = (SELECT array_agg(k ORDER BY k) FROM unnest(%s::text[]) AS k)
           ) AS ok""",
        (table, list(key), list(key)),
    ).fetchone()
    return bool(row and row["ok"])


def ensure_tracking(conn: Conn, spec: TableSpec) -> bool:
    """Install the change-log triggers on `spec.name` if missing; True if installed now
    (then the table's watermark is meaningless and it must be copied in full)."""
    present = conn.execute(
        """SELECT count(*) AS n FROM pg_trigger
            WHERE tgrelid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident(%s))
              AND tgname LIKE 'etl_track_%%'""",
        (spec.name,),
    ).fetchone()
    if present and present["n"] == 3:
        return False
    table = sql.Identifier(spec.name)
    args = sql.SQL(", ").join(sql.Literal(k) for k in spec.key)
    with conn.transaction():
        for op, refs in (
            ("INSERT", "NEW TABLE AS etl_new_rows"),
            ("UPDATE", "OLD TABLE AS etl_old_rows NEW TABLE AS etl_new_rows"),
            ("DELETE", "OLD TABLE AS etl_old_rows"),
        ):
            name = sql.Identifier(f"etl_track_{op.lower()}")
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(name, table))
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER {} AFTER " + op + " ON {} REFERENCING " + refs + " "
                    "FOR EACH STATEMENT EXECUTE FUNCTION etl_track_changes({})"
                ).format(name, table, args)
            )
        conn.execute("DELETE FROM etl_watermarks WHERE tbl = %s", (spec.name,))
    return True


@dataclass(frozen=True)
class Watermark:
    """A Postgres snapshot taken before an extract: every transaction it saw as committed
    is in the copy; every other one (in progress, or later) has txid >= xmin."""

    xmin: str
    snapshot: str


def take_watermark(conn: Conn) -> tuple[Watermark, float]:
    """The watermark for a run about to extract, and the time (epoch s) it was taken."""
    row = conn.execute(
        "SELECT pg_current_snapshot()::text AS snap,"
        " pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,"
        " extract(epoch FROM clock_timestamp())::float8 AS at"
    ).fetchone()
    assert row is not None
    return Watermark(str(row["xmin"]), str(row["snap"])), float(row["at"])


def watermarks(conn: Conn) -> dict[str, Watermark]:
    rows = conn.execute(
        "SELECT tbl, last_xmin::text AS x, last_snapshot::text AS s FROM etl_watermarks"
    ).fetchall()
    return {r["tbl"]: Watermark(r["x"], r["s"]) for r in rows}


# -- run history ----------------------------------------------------------------------


def last_published(conn: Conn) -> str | None:
    """The snapshot file of the last successful run: the one the watermarks describe."""
    row = conn.execute(
        "SELECT snapshot FROM etl_runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else row["snapshot"]


def abandon_stale_runs(conn: Conn) -> int:
    """Called under the lock: any run still 'running' belongs to a dead process."""
    cur = conn.execute(
        """UPDATE etl_runs SET status = 'abandoned', finished_at = now(),
                  error = coalesce(error, 'the process died mid-run; the next run redid it')
            WHERE status = 'running'"""
    )
    return cur.rowcount


def start_run(conn: Conn, kind: str, options: dict[str, Any]) -> int:
    row = conn.execute(
        "INSERT INTO etl_runs (kind, options) VALUES (%s, %s) RETURNING id",
        (kind, json.dumps(options)),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def claim_queued(conn: Conn) -> dict[str, Any] | None:
    """Called under the lock: the oldest queued run, now marked running (None if none)."""
    return conn.execute(
        """UPDATE etl_runs SET status = 'running', started_at = now()
            WHERE id = (SELECT id FROM etl_runs WHERE status = 'queued' ORDER BY id LIMIT 1)
        RETURNING id, kind, options"""
    ).fetchone()


def has_queued(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM etl_runs WHERE status = 'queued') AS q"
    ).fetchone()
    return bool(row and row["q"])


def record_progress(conn: Conn, run_id: int, rows: dict[str, int], mark: Watermark) -> None:
    conn.execute(
        "UPDATE etl_runs SET rows = %s, source_xmin = %s WHERE id = %s",
        (json.dumps(rows), mark.snapshot, run_id),
    )


def finish_run(
    conn: Conn,
    run_id: int,
    rows: dict[str, int],
    snapshot: str,
    mark: Watermark,
    tables: list[str],
) -> None:
    """Commit the watermarks with the run's success, after the snapshot is published,
    and drop change-log entries the published snapshot now covers."""
    with conn.transaction():
        for t in tables:
            conn.execute(
                """INSERT INTO etl_watermarks (tbl, last_xmin, last_snapshot)
                   VALUES (%s, %s::xid8, %s::pg_snapshot)
                   ON CONFLICT (tbl) DO UPDATE SET last_xmin = EXCLUDED.last_xmin,
                          last_snapshot = EXCLUDED.last_snapshot, updated_at = now()""",
                (t, mark.xmin, mark.snapshot),
            )
            conn.execute(
                "DELETE FROM etl_changes WHERE tbl = %s AND txid < %s::xid8", (t, mark.xmin)
            )
        conn.execute(
            """UPDATE etl_runs SET status = 'succeeded', finished_at = now(), rows = %s,
                      snapshot = %s WHERE id = %s""",
            (json.dumps(rows), snapshot, run_id),
        )


def finish_lake_run(
    conn: Conn,
    run_id: int,
    rows: dict[str, int],
    snapshot: str,
    mark: Watermark,
    tables: list[str],
) -> None:
    """After the lake commit (which holds the watermark): the run's success, and the
    change-log entries the committed snapshot covers dropped. No watermark is written
    here: the lake's `_etl_meta` is the only copy (etl/lakehouse.py)."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM etl_changes WHERE tbl = ANY(%s) AND txid < %s::xid8", (tables, mark.xmin)
        )
        conn.execute(
            """UPDATE etl_runs SET status = 'succeeded', finished_at = now(), rows = %s,
                      snapshot = %s WHERE id = %s""",
            (json.dumps(rows), snapshot, run_id),
        )


def grant_catalog_read(conn: Conn, schema: str, role: str) -> None:
    """The lake readers' role may read the catalog schema, and only read it: USAGE and
    SELECT on its tables, including those DuckLake creates later (default privileges of
    the writer, who creates them). Idempotent; runs before each lake run."""
    names = {"s": sql.Identifier(schema), "r": sql.Identifier(role)}
    with conn.transaction():
        for statement in (
            "GRANT USAGE ON SCHEMA {s} TO {r}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
        ):
            conn.execute(sql.SQL(statement).format(**names))


def record_committed_run(
    conn: Conn,
    run_id: int,
    snapshot: str,
    committed_at: float,
    mark: Watermark,
    tables: list[str],
) -> bool:
    """A lake run whose commit landed but whose process died before `finish_lake_run`
    (marked 'abandoned', or still 'running'): record it as the success it was, with the
    snapshot its commit made and the commit's time (epoch seconds). The rows it loaded
    were recorded as it went (`record_progress`). True if the run needed it."""
    with conn.transaction():
        cur = conn.execute(
            """UPDATE etl_runs SET status = 'succeeded', snapshot = %s, error = NULL,
                      finished_at = to_timestamp(%s)
                WHERE id = %s AND status IN ('running', 'abandoned')""",
            (snapshot, committed_at, run_id),
        )
        if cur.rowcount:
            conn.execute(
                "DELETE FROM etl_changes WHERE tbl = ANY(%s) AND txid < %s::xid8",
                (tables, mark.xmin),
            )
    return bool(cur.rowcount)


def fail_run(conn: Conn, run_id: int, error: str) -> None:
    conn.execute(
        """UPDATE etl_runs SET status = 'failed', finished_at = now(), error = %s
            WHERE id = %s AND status = 'running'""",
        (error[:4000], run_id),
    )


RUN_COLUMNS = """id, kind, status, started_at, finished_at, rows, error, snapshot, source_xmin,
    options, extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8 AS duration_s"""


def get_run(conn: Conn, run_id: int) -> dict[str, Any] | None:
    return conn.execute(f"SELECT {RUN_COLUMNS} FROM etl_runs WHERE id = %s", (run_id,)).fetchone()


def connect(url: str, schema: str, application_name: str = "polyshop-etl") -> Conn:
    from storage.postgres import connect_kwargs

    return psycopg.connect(
        url,
        autocommit=True,
        row_factory=dict_row,
        **connect_kwargs(schema=schema, application_name=application_name, statement_timeout_ms=0),
    )
