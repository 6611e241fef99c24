"""The Postgres pool's checkout check, against a real server: a connection is checked
unless it was returned moments ago (storage/postgres.py, CHECK_BYPASS_S)."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app.settings import Settings
from storage import postgres


async def test_the_check_is_skipped_only_for_a_connection_just_returned(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[int] = []
    real_check = AsyncConnectionPool.check_connection

    async def counting_check(conn: AsyncConnection[Any]) -> None:
        checked.append(id(conn))
        await real_check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting_check))
    pool = await postgres.create_pool(
        settings.database_url, schema=settings.database_schema, min_size=1, max_size=1
    )
    try:
        await pool.wait(timeout=10)
        async with pool.connection() as conn:  # never returned before: checked
            await conn.execute("SELECT 1")
        assert len(checked) == 1
        async with pool.connection() as conn:  # returned a moment ago: not checked
            await conn.execute("SELECT 1")
        assert len(checked) == 1
        monkeypatch.setattr(postgres, "CHECK_BYPASS_S", 0.0)  # as if idle for a while
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT 1 AS one")
            assert await cur.fetchone() == {"one": 1}
        assert len(checked) == 2
    finally:
        await pool.close()


async def test_read_connection_reads_without_a_transaction_and_hands_back_a_normal_one(
    settings: Settings,
) -> None:
    pool = await postgres.create_pool(
        settings.database_url, schema=settings.database_schema, min_size=1, max_size=1
    )
    try:
        await pool.wait(timeout=10)
        async with postgres.read_connection(pool) as conn:
            cur = await conn.execute("SELECT now() = statement_timestamp() AS outside")
            # outside a transaction block, now() is the statement's own timestamp
            assert await cur.fetchone() == {"outside": True}
        async with pool.connection() as conn:  # the same (only) connection
            assert not conn.autocommit
            await conn.execute("SELECT 1")
            cur = await conn.execute("SELECT now() = statement_timestamp() AS outside")
            assert await cur.fetchone() == {"outside": False}  # inside BEGIN ... COMMIT
    finally:
        await pool.close()
