"""The data generation: a short id that changes whenever Postgres' data may have gone
back in time, so derived state keyed by it is never read again after that.

It combines three things:
- the cluster's system identifier (pg_control_system): a restore into a new cluster;
- the timeline (pg_control_checkpoint): a point-in-time recovery or a failover to a
  replica (a promotion starts a new timeline), even one that was behind;
- the `data_generation` row, which the restore procedure bumps (`polyshop cache flush`):
  a dump restored into the same cluster brings back an older row, so it is bumped after.

Reading pg_control_* needs superuser or pg_monitor; without either, the row alone is used
(the restore procedure bumps it in every case).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from psycopg import AsyncConnection
from psycopg.errors import InsufficientPrivilege

_CLUSTER = """
SELECT (SELECT system_identifier FROM pg_control_system())::text AS system_id,
       (SELECT timeline_id FROM pg_control_checkpoint())::text AS timeline
"""


async def read_generation(conn: AsyncConnection[Any]) -> str:
    """The current generation, as 12 hex digits (part of every cache key)."""
    cur = await conn.execute("SELECT token FROM data_generation WHERE id")
    row = await cur.fetchone()
    token = _field(row, "token") if row is not None else ""
    cluster = "-"
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the caller's tx usable
            cur = await conn.execute(_CLUSTER)
            crow = await cur.fetchone()
        if crow is not None:
            cluster = f"{_field(crow, 'system_id')}.{_field(crow, 'timeline')}"
    except InsufficientPrivilege:
        pass
    return hashlib.sha256(f"{cluster}:{token}".encode()).hexdigest()[:12]


async def bump_generation(conn: AsyncConnection[Any]) -> str:
    """Give the data a new generation (after a restore); returns the new one."""
    await conn.execute(
        "INSERT INTO data_generation (id, token) VALUES (true, %s) ON CONFLICT (id)"
        " DO UPDATE SET token = excluded.token, changed_at = now()",
        (secrets.token_hex(16),),
    )
    return await read_generation(conn)


def _field(row: Any, name: str) -> str:
    # works with the dict rows of the app's pool and the tuple rows of a plain connection
    if isinstance(row, dict):
        return str(row[name])
    index = {"token": 0, "system_id": 0, "timeline": 1}[name]
    return str(row[index])
