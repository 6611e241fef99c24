"""The worker forgets Idempotency-Keys past the retention window, and only those."""

from __future__ import annotations

from app.idempotency_purge import purge_once
from app.stores import Stores


async def test_purge_removes_only_expired_keys(stores: Stores) -> None:
    async with stores.pg.connection() as conn:
        await conn.execute(
            "INSERT INTO idempotency_keys (principal, key, request_hash, created_at) VALUES"
            " ('customer:1', 'old', '\\x00', now() - interval '25 hours'),"
            " ('customer:1', 'fresh', '\\x00', now() - interval '1 hour')"
        )
    assert await purge_once(stores) == 1
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT key FROM idempotency_keys")
        assert [r["key"] for r in await cur.fetchall()] == ["fresh"]
