"""storage/redis_breaker.py: the breaker shared by the product, order and search caches."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.redis_breaker import BreakerOpen, BreakerState, RedisBreaker, RedisFailed


async def _raise(exc: BaseException) -> None:
    raise exc


async def _answer() -> str:
    return "ok"


async def test_refused_connections_open_it_and_then_nothing_runs() -> None:
    states: list[BreakerState] = []
    breaker = RedisBreaker("t", threshold=2, open_s=600, on_state=states.append)
    assert await breaker.call(_answer()) == "ok"
    assert breaker.closed
    for _ in range(2):
        with pytest.raises(RedisFailed):
            await breaker.call(_raise(RedisConnectionError("refused")))
    assert await breaker.state() == "opened" and await breaker.is_open()
    assert not breaker.closed
    assert states == ["opened"]
    op = _answer()
    with pytest.raises(BreakerOpen):
        await breaker.call(op)
    assert op.cr_frame is None  # closed, never run (no "never awaited" warning)


async def test_a_success_between_failures_keeps_it_closed() -> None:
    breaker = RedisBreaker("t", threshold=2, open_s=600)
    for _ in range(3):
        with pytest.raises(RedisFailed):
            await breaker.call(_raise(RedisConnectionError("refused")))
        assert await breaker.call(_answer()) == "ok"
    assert await breaker.state() == "closed"


async def test_lone_timeouts_fail_the_call_but_do_not_open_it() -> None:
    breaker = RedisBreaker("t", threshold=3, open_s=600)
    for _ in range(2):  # below the rate (3 a second)
        with pytest.raises(RedisFailed):
            await breaker.call(_raise(RedisTimeoutError("late")))
    assert await breaker.state() == "closed"
    # from the third within the second they count, and three counted ones open it
    for _ in range(3):
        assert not await breaker.is_open()
        with pytest.raises(RedisFailed):
            await breaker.call(_raise(RedisTimeoutError("late")))
    assert await breaker.is_open()


async def test_it_closes_after_a_probe_that_answers() -> None:
    breaker = RedisBreaker("t", threshold=1, open_s=0.01)
    with pytest.raises(RedisFailed):
        await breaker.call(_raise(RedisConnectionError("refused")))
    assert await breaker.is_open()
    await asyncio.sleep(0.05)
    assert not await breaker.is_open()
    assert await breaker.call(_answer()) == "ok"
    assert await breaker.state() == "closed"
