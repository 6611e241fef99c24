"""API keys: random secrets handed out once, stored only as HMAC-SHA256(pepper, key)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection

Role = Literal["admin", "customer", "warehouse"]
ROLES: tuple[Role, ...] = ("admin", "customer", "warehouse")
KEY_PREFIX = "psk_"


@dataclass(frozen=True)
class ApiKey:
    id: int
    role: Role
    customer_id: int | None


def hash_key(pepper: str, key: str) -> bytes:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).digest()


async def create_key(
    conn: AsyncConnection[Any],
    *,
    pepper: str,
    role: Role,
    customer_id: int | None = None,
    name: str = "",
) -> str:
    """Store a new key's hash and return the key itself; it is never shown again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (key_hash, prefix, role, customer_id, name)"
        " VALUES (%s, %s, %s, %s, %s)",
        (hash_key(pepper, key), key[:10], role, customer_id, name),
    )
    return key


async def lookup(conn: AsyncConnection[Any], *, pepper: str, key: str) -> ApiKey | None:
    cur = await conn.execute(
        "SELECT id, role, customer_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_key(pepper, key),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return ApiKey(id=row["id"], role=row["role"], customer_id=row["customer_id"])
