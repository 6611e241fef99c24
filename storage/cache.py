"""Redis client factory and health probe."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def create_redis(url: str, *, timeout_s: float = 0.5, max_connections: int = 512) -> Redis:
    """A client on a pool of at most `max_connections`. Short socket timeouts: a sick
    Redis must cost a read milliseconds, not seconds.

    The pool blocks (up to `timeout_s`) when every connection is in use, instead of
    raising at once as redis-py's default pool does past its 100 connections: under a
    burst of in-flight requests that default refused calls to a healthy Redis, which
    the rate limiter took for an outage and failed open on (docs/benchmarks.md, "The
    list pages' cache"). A wait that runs out is a timeout like a slow reply."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=10,
    )
    return Redis.from_pool(pool)


async def ping(redis: Redis) -> None:
    await redis.ping()


async def delete_matching(redis: Redis, pattern: str) -> int:
    """Delete every key matching `pattern` (SCAN, UNLINK in batches); how many."""
    removed = 0
    batch: list[bytes | str] = []
    async for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed += int(await redis.unlink(*batch))
            batch = []
    if batch:
        removed += int(await redis.unlink(*batch))
    return removed
