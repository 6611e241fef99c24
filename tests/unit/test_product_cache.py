"""ProductCache logic that needs no running service: the entry format and the circuit
breaker around a Redis that refuses connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from storage.cache import create_redis
from storage.product_cache import CacheResult, Entry, ProductCache
from storage.redis_breaker import BreakerState

DEAD_REDIS = "redis://127.0.0.1:1/0"  # connection refused, immediately


def test_entry_round_trip_keeps_newlines_in_the_body() -> None:
    entry = Entry(42, b'{"description": "two\\nlines"}\n')
    assert Entry.decode(entry.encode()) == entry
    assert entry.encode().startswith(b"42\n")


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    redis = create_redis(DEAD_REDIS, timeout_s=0.2)
    yield redis
    await redis.aclose()


def make_cache(
    redis: Redis, results: list[CacheResult], states: list[BreakerState]
) -> ProductCache:
    return ProductCache(
        redis,
        prefix="unit:",
        ttl_s=60,
        ttl_jitter=0.1,
        breaker_threshold=2,
        breaker_open_s=0.2,
        on_result=results.append,
        on_breaker_state=states.append,
    )


async def test_breaker_opens_after_threshold_and_skips_redis_while_open(
    dead_redis: Redis,
) -> None:
    results: list[CacheResult] = []
    states: list[BreakerState] = []
    cache = make_cache(dead_redis, results, states)
    loads = 0

    async def load() -> Entry | None:
        nonlocal loads
        loads += 1
        return Entry(1, b"{}")

    for _ in range(5):
        assert await cache.get_or_load(7, load) == Entry(1, b"{}")
    assert loads == 5  # every read is served, from the loader (Postgres)
    assert results == ["error", "error", "bypass", "bypass", "bypass"]
    assert states == ["opened"]
    assert await cache.breaker_state() == "opened"

    await asyncio.sleep(0.25)  # open time over: the next call probes Redis, which fails
    assert await cache.get_or_load(7, load) == Entry(1, b"{}")
    assert states == ["opened", "half-opened", "opened"]
    assert await cache.get_or_load(7, load) == Entry(1, b"{}")
    assert results[-2:] == ["error", "bypass"]


async def test_missed_invalidations_are_remembered_with_their_highest_version(
    dead_redis: Redis,
) -> None:
    cache = make_cache(dead_redis, [], [])
    assert not await cache.invalidate(3, 5)
    assert not await cache.invalidate(3, 4)
    assert not await cache.invalidate(9, 1)
    assert cache._missed == {3: 5, 9: 1}


async def test_relay_invalidation_raises_so_the_event_is_retried(dead_redis: Redis) -> None:
    cache = make_cache(dead_redis, [], [])
    with pytest.raises(RedisConnectionError):
        await cache.invalidate_strict([(1, 2)])


async def _raise(exc: BaseException) -> None:
    raise exc


async def test_the_breaker_opens_on_refused_connections_but_not_on_a_lone_timeout(
    dead_redis: Redis,
) -> None:
    """A busy event loop makes single calls time out although Redis is fine: those must
    not open the breaker; timeouts above the rate, or refused connections, do."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from storage.product_cache import _Bypass

    states: list[BreakerState] = []
    cache = make_cache(dead_redis, [], states)  # threshold 2, so 2 timeouts per second
    with pytest.raises(_Bypass):
        await cache._guarded(_raise(RedisTimeoutError("late")))
    assert await cache.breaker_state() == "closed"  # one timeout: not counted
    for _ in range(2):  # above the rate: counted, and the second opens it
        with pytest.raises(_Bypass):
            await cache._guarded(_raise(RedisTimeoutError("late")))
    assert states == ["opened"]

    refused = make_cache(dead_redis, [], [])
    for _ in range(2):
        with pytest.raises(_Bypass):
            await refused._guarded(_raise(RedisConnectionError("refused")))
    assert await refused.breaker_state() == "opened"


async def test_timeouts_that_the_loops_stall_explains_never_open_the_breaker(
    dead_redis: Redis,
) -> None:
    """A cold pool connecting while the loop is blocked: every call times out, far above
    the rate, yet Redis is fine. Those timeouts are the loop's (LoopLag) and count for
    nothing; the same timeouts while the loop runs (a slow Redis) open the breaker."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from storage.product_cache import _Bypass
    from storage.redis_errors import LoopLag

    # stalls from 50 ms: a loaded machine's late wake-ups (a few ms each) are no stall
    lag = LoopLag(interval_s=0.01, min_stall_s=0.05)
    states: list[BreakerState] = []
    cache = ProductCache(
        dead_redis, prefix="unit:", ttl_s=60, ttl_jitter=0.1, breaker_threshold=2,
        breaker_open_s=0.2, on_breaker_state=states.append, loop_lag=lag, redis_timeout_s=0.2,
    )  # fmt: skip

    async def late() -> None:
        time.sleep(0.25)  # noqa: ASYNC251  (the loop stalls while the call waits)
        raise RedisTimeoutError("late")

    async def slow() -> None:
        # the loop runs; Redis takes the whole timeout (and more: on a loaded machine
        # the timer itself fires late)
        await asyncio.sleep(0.4)
        raise RedisTimeoutError("slow")

    async with lag.running():
        await asyncio.sleep(0.03)
        for _ in range(5):
            with pytest.raises(_Bypass):
                await cache._guarded(late())
        assert states == [] and await cache.breaker_state() == "closed"
        for _ in range(3):  # the first is below the rate, the next two open it
            with pytest.raises(_Bypass):
                await cache._guarded(slow())
        assert states == ["opened"]
