"""The Postgres pool against a real server: a connection is checked unless it was
returned moments ago (storage/postgres.py, CHECK_BYPASS_S), and a checkout fails at once
while the server is known to be unreachable (setting `database_fail_fast_s`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app.settings import Settings
from app.stores import open_stores
from storage import postgres


@contextlib.asynccontextmanager
async def live_pool(settings: Settings) -> AsyncIterator[postgres.Pool]:
    """A one-connection pool on the test database, its connection made."""
    pool = await postgres.create_pool(
        settings.database_url, schema=settings.database_schema, min_size=1, max_size=1
    )
    try:
        await pool.wait(timeout=10)
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def refused_pool(settings: Settings, **options: Any) -> AsyncIterator[postgres.Pool]:
    """A pool on a port nothing listens on, once its first connection attempt failed."""
    pool = await postgres.create_pool(
        "postgresql://polyshop@127.0.0.1:1/nowhere",  # refused: nothing listens there
        schema=settings.database_schema,
        min_size=1,
        max_size=2,
        **options,
    )
    try:
        for _ in range(200):  # the pool's first background attempt
            if pool.health.failed_at is not None:
                break
            await asyncio.sleep(0.05)
        assert pool.health.failed_at is not None
        yield pool
    finally:
        await pool.close()


async def test_the_check_is_skipped_only_for_a_connection_just_returned(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[int] = []
    real_check = AsyncConnectionPool.check_connection

    async def counting_check(conn: AsyncConnection[Any]) -> None:
        checked.append(id(conn))
        await real_check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting_check))
    async with live_pool(settings) as pool:
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


async def test_read_connection_reads_without_a_transaction_and_hands_back_a_normal_one(
    settings: Settings,
) -> None:
    async with live_pool(settings) as pool:
        async with postgres.read_connection(pool) as conn:
            cur = await conn.execute("SELECT now() = statement_timestamp() AS outside")
            # outside a transaction block, now() is the statement's own timestamp
            assert await cur.fetchone() == {"outside": True}
        async with pool.connection() as conn:  # the same (only) connection
            assert not conn.autocommit
            await conn.execute("SELECT 1")
            cur = await conn.execute("SELECT now() = statement_timestamp() AS outside")
            assert await cur.fetchone() == {"outside": False}  # inside BEGIN ... COMMIT


async def test_a_checkout_fails_at_once_while_the_server_is_down_and_works_once_it_is_back(
    settings: Settings,
) -> None:
    async with refused_pool(settings) as pool:
        assert pool.health.known_down()
        # not the pool's own timeout ("couldn't get a connection after 5.00 sec")
        with pytest.raises(PoolTimeout, match="unreachable"):
            async with pool.connection():
                pass
        # the server "comes back" (same pool, now pointed at a live one); once the
        # window has passed, a checkout waits for the pool again and gets a connection
        pool.conninfo = settings.database_url
        pool.health.window_s = 0.0
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT 1 AS one")
            assert await cur.fetchone() == {"one": 1}
        assert not pool.health.known_down() and pool.health.failed_at is None


async def test_with_fail_fast_off_a_checkout_waits_the_pool_timeout(settings: Settings) -> None:
    async with refused_pool(settings, timeout_s=0.3, fail_fast_s=0.0) as pool:
        assert pool.health.failed_at is not None and not pool.health.known_down()
        # the pool's own timeout, not the fail-fast refusal
        with pytest.raises(PoolTimeout, match=r"after 0\.30 sec"):
            async with pool.connection():
                pass


async def test_the_pool_takes_its_timeouts_from_the_settings(settings: Settings) -> None:
    custom = settings.model_copy(
        update={"database_pool_timeout_s": 1.5, "database_fail_fast_s": 0.25}
    )
    async with open_stores(custom) as stores:
        assert isinstance(stores.pg, postgres.Pool)
        assert stores.pg.timeout == 1.5
        assert stores.pg.health.window_s == 0.25
