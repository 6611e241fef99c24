"""Lake upkeep, under the ETL's lock: expire old snapshots, compact files, delete the
unreferenced ones; and the lake's status (snapshots, files, sizes).

Each ETL run adds a snapshot and a few small files (its inserts; its deletes as delete
files). Left alone, a query reads more and more files and the bucket keeps every version.
One maintenance pass:
1. `ducklake_flush_inlined_data`: rows DuckLake kept inside the catalog (small inserts)
   are written out to Parquet;
2. `ducklake_expire_snapshots`: snapshots older than the retention are forgotten (time
   travel reaches back that far, no further); the files only they used are scheduled for
   deletion;
3. `ducklake_merge_adjacent_files` and `ducklake_rewrite_data_files`: small files are
   merged and files with many deleted rows rewritten, as a new snapshot with the same rows;
4. `ducklake_cleanup_old_files` (scheduled files) and `ducklake_delete_orphaned_files`
   (files no snapshot names, such as those of a run killed before its commit), both only
   when older than `grace_s`, so a query that began on an older snapshot a moment ago
   still finds its files.

The pass takes the ETL's advisory lock: it never runs beside an ETL run (whose files
are orphans until it commits), and two workers never run it at once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog

from analytics.lake import LakeConfig
from etl import engine, tracking
from etl.lakehouse import ensure_bucket

log = structlog.get_logger()

LAKE = engine.SNAPSHOT


class MaintenanceLocked(RuntimeError):
    """An ETL run (or another maintenance pass) holds the lock."""


@dataclass
class MaintenanceResult:
    expired_snapshots: int = 0
    merged: int = 0
    rewritten: int = 0
    deleted_files: int = 0
    orphans_deleted: int = 0
    after: dict[str, Any] = field(default_factory=dict)


def _count(duck: Any, sql: str) -> int:
    return len(duck.execute(sql).fetchall())


def maintain(
    database_url: str,
    schema: str,
    lake: LakeConfig,
    *,
    retention_s: float,
    grace_s: float,
    threads: int = 2,
    memory_limit: str = "1GB",
) -> MaintenanceResult:
    """One maintenance pass (raises MaintenanceLocked while the ETL runs)."""
    conn = tracking.connect(database_url, schema, application_name="polyshop-lake-maintenance")
    try:
        if not tracking.try_lock(conn):
            raise MaintenanceLocked("an ETL run holds the lock")
        try:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{lake.metadata_schema}"')
            ensure_bucket(lake)
            result = MaintenanceResult()
            with engine.lake_writer(lake, database_url, threads, memory_limit) as duck:
                retention = f"now() - to_microseconds({int(retention_s * 1e6)})"
                grace = f"now() - to_microseconds({int(grace_s * 1e6)})"
                duck.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
                result.expired_snapshots = _count(
                    duck, f"CALL ducklake_expire_snapshots('{LAKE}', older_than => {retention})"
                )
                result.merged = _count(duck, f"CALL ducklake_merge_adjacent_files('{LAKE}')")
                result.rewritten = _count(duck, f"CALL ducklake_rewrite_data_files('{LAKE}')")
                result.deleted_files = _count(
                    duck, f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => {grace})"
                )
                result.orphans_deleted = _count(
                    duck,
                    f"CALL ducklake_delete_orphaned_files('{LAKE}', older_than => {grace})",
                )
                result.after = _status(duck)
        finally:
            with contextlib.suppress(Exception):
                tracking.unlock(conn)
    finally:
        conn.close()
    log.info("lake.maintained", **{k: v for k, v in result.__dict__.items() if k != "after"})
    return result


def _status(duck: Any) -> dict[str, Any]:
    snaps = duck.execute(
        f"SELECT count(*), min(snapshot_id), max(snapshot_id), max(snapshot_time)::VARCHAR"
        f" FROM ducklake_snapshots('{LAKE}')"
    ).fetchone()
    tables = [
        {
            "table": r[0],
            "data_files": int(r[1]),
            "data_bytes": int(r[2]),
            "delete_files": int(r[3]),
            "delete_bytes": int(r[4]),
        }
        for r in duck.execute(
            f"SELECT table_name, file_count, file_size_bytes, delete_file_count,"
            f" delete_file_size_bytes FROM ducklake_table_info('{LAKE}') ORDER BY table_name"
        ).fetchall()
    ]
    return {
        "snapshots": int(snaps[0]),
        "oldest_snapshot": snaps[1],
        "latest_snapshot": snaps[2],
        "latest_snapshot_time": snaps[3],
        "data_files": sum(t["data_files"] for t in tables),
        "data_bytes": sum(t["data_bytes"] for t in tables),
        "delete_files": sum(t["delete_files"] for t in tables),
        "delete_bytes": sum(t["delete_bytes"] for t in tables),
        "tables": tables,
    }


def lake_status(
    database_url: str, lake: LakeConfig, threads: int = 2, memory_limit: str = "1GB"
) -> dict[str, Any]:
    """Snapshots, files and sizes of the lake (read-only; no lock needed)."""
    import duckdb

    from analytics.lake import attach, load_extensions

    con = duckdb.connect(
        ":memory:",
        config={
            "threads": threads,
            "memory_limit": memory_limit,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
        },
    )
    with con:
        load_extensions(con)
        attach(con, lake, LAKE, read_only=True)
        status = _status(con)
        status["data_path"] = lake.data_path
        status["metadata_schema"] = lake.metadata_schema
        return status
