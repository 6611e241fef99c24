"""Redis client factory and health probe."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str, *, timeout_s: float = 0.5) -> Redis:
    # Short socket timeouts: a sick Redis must cost a read milliseconds, not seconds.
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=10,
    )


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
