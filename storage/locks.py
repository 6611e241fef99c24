"""The one advisory-lock key scheme: every lock's key is a 64-bit hash of the current
schema and the lock's name, so two schemas of one database (tests, benchmarks, a second
shop) never block each other, and every lock in polyshop is spelt one way.

`KEY_SQL` takes the name as its one parameter; the sync code (ETL, seed) uses it in
its own statements, the async code through the helpers below.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

KEY_SQL = "hashtextextended(current_schema() || ':' || %s, 0)"

Conn = AsyncConnection[dict[str, Any]]


async def xact_lock(conn: Conn, name: str, *, shared: bool = False) -> None:
    """Wait for the lock; it is released at the end of the transaction."""
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {fn}({KEY_SQL})", (name,))


async def try_xact_lock(conn: Conn, name: str) -> bool:
    """Take the lock for this transaction if it is free; False if another holds it."""
    cur = await conn.execute(f"SELECT pg_try_advisory_xact_lock({KEY_SQL}) AS got", (name,))
    row = await cur.fetchone()
    return bool(row and row["got"])


async def try_session_lock(conn: Conn, name: str) -> bool:
    """Take the lock for this session if it is free (release with `session_unlock`;
    Postgres releases it if the session dies)."""
    cur = await conn.execute(f"SELECT pg_try_advisory_lock({KEY_SQL}) AS got", (name,))
    row = await cur.fetchone()
    return bool(row and row["got"])


async def session_unlock(conn: Conn, name: str) -> None:
    await conn.execute(f"SELECT pg_advisory_unlock({KEY_SQL})", (name,))
