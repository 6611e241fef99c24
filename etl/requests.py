"""ETL runs asked for through the API: a 'queued' row in `etl_runs` that a worker's
`etl-requests` task starts (`EtlJob.begin_requested`). The API never runs DuckDB."""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection, errors

from etl.tracking import RUN_COLUMNS, RUNNING_SQL

Conn = AsyncConnection[dict[str, Any]]


class AlreadyRequested(RuntimeError):
    """A run is in progress, or one is already queued."""


async def request_run(conn: Conn, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Queue a run in the caller's transaction; AlreadyRequested if one runs or waits."""
    cur = await conn.execute(RUNNING_SQL)
    row = await cur.fetchone()
    if row and row["running"]:
        raise AlreadyRequested("an ETL run is already in progress")
    try:
        async with conn.transaction():  # a savepoint: the unique index refuses a second
            cur = await conn.execute(
                f"INSERT INTO etl_runs (kind, status, options) VALUES (%s, 'queued', %s)"
                f" RETURNING {RUN_COLUMNS}",
                (kind, json.dumps(options)),
            )
    except errors.UniqueViolation as exc:
        raise AlreadyRequested("an ETL run is already queued") from exc
    queued = await cur.fetchone()
    assert queued is not None
    return queued


async def recent_runs(conn: Conn, limit: int) -> tuple[bool, list[dict[str, Any]]]:
    """Whether a run is on now (some process holds the ETL lock), and the `limit` newest
    runs, newest first: what GET /etl/runs and the admin's ETL page show."""
    cur = await conn.execute(
        f"SELECT {RUN_COLUMNS} FROM etl_runs ORDER BY started_at DESC, id DESC LIMIT %s",
        (limit,),
    )
    runs = await cur.fetchall()
    cur = await conn.execute(RUNNING_SQL)
    row = await cur.fetchone()
    return bool(row and row["running"]), runs


async def find_run(conn: Conn, run_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {RUN_COLUMNS} FROM etl_runs WHERE id = %s", (run_id,))
    return await cur.fetchone()
