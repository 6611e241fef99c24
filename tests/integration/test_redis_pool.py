"""storage/cache.py: create_redis's pool waits for a free connection instead of refusing
the call (redis-py's default pool raised MaxConnectionsError past 100 connections, which
the rate limiter took for a Redis outage), and a wait that runs out reads as a timeout."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.settings import Settings
from storage.cache import create_redis
from storage.redis_errors import is_connection_failure, is_timeout


async def test_more_concurrent_calls_than_connections_all_succeed(settings: Settings) -> None:
    redis = create_redis(settings.redis_url, timeout_s=2.0, max_connections=3)
    try:
        key = f"{settings.redis_prefix}pool-test"
        replies = await asyncio.gather(*(redis.incr(key) for _ in range(60)))
        assert sorted(replies) == list(range(1, 61))
        pool = redis.connection_pool
        assert len(pool._in_use_connections) + len(pool._available_connections) <= 3
    finally:
        await redis.aclose()


async def test_a_wait_for_a_connection_that_runs_out_is_a_timeout(settings: Settings) -> None:
    redis = create_redis(settings.redis_url, timeout_s=0.2, max_connections=1)
    try:
        held = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            with pytest.raises(RedisConnectionError) as caught:
                await redis.ping()
        finally:
            await redis.connection_pool.release(held)
        assert is_timeout(caught.value) and not is_connection_failure(caught.value)
        assert await redis.ping()  # free again
    finally:
        await redis.aclose()
