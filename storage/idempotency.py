"""Stripe-style idempotency records: one row per (principal, key) holding the request's
fingerprint and, once the request has run, the response to replay byte for byte.

Concurrency: `begin` inserts the row inside the caller's transaction, the same one that
does the work and `complete`s the row. A concurrent request with the same key blocks on
the primary key until that transaction ends (on any replica: the lock lives in Postgres),
then finds the completed row and replays it. If the first transaction rolls back, the
row vanishes with it and the waiter runs the request itself. So a key yields one effect,
never a half-done one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Existing:
    """The key was used before: by this exact request (`response` set) or another one."""

    same_request: bool
    response: StoredResponse | None


def fingerprint(method: str, path: str, payload: Any) -> bytes:
    """A hash of the request as parsed, so whitespace or key order do not matter."""
    canonical = json.dumps([method, path, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


async def begin(
    conn: AsyncConnection[Any], *, principal: str, key: str, request_hash: bytes
) -> Existing | None:
    """Claim `key` in the caller's transaction. None: it is ours, run the request.
    Otherwise the earlier use of the key (waits for a concurrent one to finish first)."""
    cur = await conn.execute(
        "INSERT INTO idempotency_keys (principal, key, request_hash) VALUES (%s, %s, %s)"
        " ON CONFLICT (principal, key) DO NOTHING RETURNING 1",
        (principal, key, request_hash),
    )
    if await cur.fetchone() is not None:
        return None
    cur = await conn.execute(
        "SELECT request_hash, state, response_status, response_headers, response_body"
        " FROM idempotency_keys WHERE principal = %s AND key = %s",
        (principal, key),
    )
    row = await cur.fetchone()
    if row is None:  # expired and purged between the two statements: a fresh start
        return await begin(conn, principal=principal, key=key, request_hash=request_hash)
    values = _as_tuple(row)
    same = bytes(values[0]) == request_hash
    if values[1] != "completed":
        return Existing(same_request=same, response=None)
    response = StoredResponse(status=values[2], headers=dict(values[3]), body=bytes(values[4]))
    return Existing(same_request=same, response=response)


async def complete(
    conn: AsyncConnection[Any], *, principal: str, key: str, response: StoredResponse
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET state = 'completed', response_status = %s,"
        " response_headers = %s, response_body = %s, completed_at = now()"
        " WHERE principal = %s AND key = %s",
        (response.status, Jsonb(response.headers), response.body, principal, key),
    )


async def purge(conn: AsyncConnection[Any], *, older_than: timedelta) -> int:
    """Forget keys older than `older_than` (Stripe keeps them 24 hours)."""
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - %s", (older_than,)
    )
    return cur.rowcount


def _as_tuple(row: Any) -> tuple[Any, ...]:
    if isinstance(row, dict):
        return tuple(row.values())
    return tuple(row)
