"""The circuit breaker in front of a Redis-backed cache (the product, order and search
caches): purgatory's breaker, told a sick Redis from a busy process.

It opens after `threshold` failures in a row; failed connections count, timeouts count
only above `threshold` a second (`TimeoutRate`), and a timeout that this process's own
stalled event loop explains (`LoopLag.explains`) never counts (storage/redis_errors.py).
While open (`open_s`), `call` runs nothing and raises `BreakerOpen`; then one probe goes
through (half-open) and closes it again if Redis answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from redis.exceptions import RedisError

from storage.redis_errors import LoopLag, TimeoutRate, is_timeout

BreakerState = Literal["closed", "opened", "half-opened"]
REDIS_FAILURES = (RedisError, OSError, TimeoutError)

T = TypeVar("T")


class BreakerOpen(Exception):
    """The breaker is open: the operation was not run."""


class RedisFailed(Exception):
    """The operation failed (its Redis error is the cause); counted by the breaker unless
    it was a lone timeout or this process's stall."""


class RedisBreaker:
    """One per cache and process."""

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        open_s: float = 5.0,
        redis_timeout_s: float = 0.5,
        loop_lag: LoopLag | None = None,
        on_state: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self._redis_timeout_s = redis_timeout_s
        self._lag = loop_lag or LoopLag()
        self._timeouts = TimeoutRate(threshold)
        self._on_state = on_state
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=open_s,
            exclude=[_LateTimeout, (Exception, self._a_lone_timeout)],
        )
        self._factory.add_listener(self._event)
        self._circuit: AsyncCircuitBreaker | None = None

    @property
    def closed(self) -> bool:
        """Known closed without awaiting (False before the first call)."""
        return self._circuit is not None and self._circuit.context.state == "closed"

    async def state(self) -> BreakerState:
        state: BreakerState = (await self._breaker()).context.state
        return state

    async def is_open(self) -> bool:
        return _open(await self._breaker())

    async def call(self, op: Awaitable[T]) -> T:
        """`await op` behind the breaker: `BreakerOpen` (op closed, not run) or
        `RedisFailed` instead of a Redis error."""
        breaker = await self._breaker()
        if _open(breaker):
            _close(op)
            raise BreakerOpen
        mark = self._lag.mark()
        try:
            async with breaker:
                try:
                    return await op
                except REDIS_FAILURES as exc:
                    if is_timeout(exc) and self._lag.explains(mark, self._redis_timeout_s):
                        raise _LateTimeout from exc  # this process's stall, not Redis'
                    raise
        except OpenedState as exc:
            _close(op)
            raise BreakerOpen from exc
        except (_LateTimeout, *REDIS_FAILURES) as exc:
            raise RedisFailed from exc

    async def _breaker(self) -> AsyncCircuitBreaker:
        if self._circuit is None:
            self._circuit = await self._factory.get_breaker(self.name)
        return self._circuit

    def _a_lone_timeout(self, exc: BaseException) -> bool:
        """Breaker filter: True (not a failure) for a timeout below the rate."""
        if not is_timeout(exc):
            return False
        self._timeouts.record()
        return not self._timeouts.exceeded()

    def _event(self, name: str, kind: str, event: Any) -> None:
        if kind == "state_changed" and self._on_state is not None:
            self._on_state(event.state)


def _open(breaker: AsyncCircuitBreaker) -> bool:
    # Decided here, not by entering the purgatory breaker: entering an open one re-raises
    # one stored exception object, whose traceback grows with every call.
    ctx = breaker.context
    return ctx.state == "opened" and time.time() < (ctx.opened_at or 0) + ctx.ttl


class _LateTimeout(Exception):
    """A Redis call timed out while this process's event loop stalled (not a failure
    for the breaker; the caller still falls back)."""


def _close(op: Awaitable[Any]) -> None:
    """An operation we decided not to run: close its coroutine (no 'never awaited')."""
    close = getattr(op, "close", None)
    if close is not None:
        close()
