"""API keys: random secrets handed out once, stored only as HMAC-SHA256(pepper, key)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
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
    return await lookup_hash(conn, hash_key(pepper, key))


async def lookup_hash(conn: AsyncConnection[Any], key_hash: bytes) -> ApiKey | None:
    cur = await conn.execute(
        "SELECT id, role, customer_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
        (key_hash,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return ApiKey(id=row["id"], role=row["role"], customer_id=row["customer_id"])


# Revocations are announced on this channel (payload: the schema) by a trigger on
# api_keys (migration 0003), whatever changed the row.
NOTIFY_CHANNEL = "polyshop_api_keys"


class ApiKeyCache:
    """Valid keys seen lately, by hash, in one process: an authenticated request then
    costs no Postgres round trip. An entry lives at most `ttl_s`; the whole cache is
    dropped on every notification on NOTIFY_CHANNEL, and it is used only while this
    process listens there (`set_listening`), so a revoked key is refused as soon as the
    notification arrives, and never later than `ttl_s` after the revocation. Unknown
    keys are never cached (a new key works at once)."""

    MAX_ENTRIES = 10_000

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[bytes, tuple[ApiKey, float]] = {}
        self.listening = False

    def get(self, key_hash: bytes) -> ApiKey | None:
        if not self.listening or self.ttl_s <= 0:
            return None
        found = self._entries.get(key_hash)
        if found is None:
            return None
        key, expires = found
        if self._clock() >= expires:
            del self._entries[key_hash]
            return None
        return key

    def put(self, key_hash: bytes, key: ApiKey) -> None:
        if not self.listening or self.ttl_s <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (key, self._clock() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()

    def set_listening(self, listening: bool) -> None:
        self.listening = listening
        self.clear()
