"""Tell a sick Redis from a busy process.

A refused or reset connection is Redis (or the network) failing. A timeout is ambiguous:
when this process's event loop is busy (a burst of requests on a small machine), the
answer may have arrived in time but been read too late, and the client's timer fires
first. So callers retry a timed-out call once (a healthy Redis answers it) and treat
timeouts as an outage only above a rate (`TimeoutRate`), never one by one.

A retry is not enough when the pool is cold: a burst that must open its connections
while the loop is blocked times out while connecting, on the retry as well. `LoopLag`
measures how late the loop has been, so a timeout can be measured around the Redis call
alone: `LoopLag.explains(mark, timeout_s)` is true when the call's wait, less the loop's
stalls during it, is well under the timeout. Such a timeout is this process's, not
Redis': the caller retries it (bounded) and counts it as no outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Redis' own share of a timed-out wait below this fraction of the timeout: the loop's lag,
# not Redis, made the call time out.
LATE_SHARE = 0.75


def is_timeout(exc: BaseException) -> bool:
    # redis-py raises its own TimeoutError (a ConnectionError subclass) or the builtin one;
    # a blocking pool whose wait for a free connection ran out raises a ConnectionError
    # from the builtin TimeoutError: this process is busy, Redis may be fine
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return True
    return isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, TimeoutError)


def is_connection_failure(exc: BaseException) -> bool:
    return not is_timeout(exc) and isinstance(exc, RedisConnectionError | OSError)


class TimeoutRate:
    """Timeouts seen in the last `window_s`; `exceeded` once there are `limit` of them."""

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen: deque[float] = deque()

    def record(self) -> None:
        self._seen.append(time.monotonic())

    def exceeded(self) -> bool:
        cutoff = time.monotonic() - self.window_s
        while self._seen and self._seen[0] < cutoff:
            self._seen.popleft()
        return len(self._seen) >= self.limit


@dataclass(frozen=True)
class LagMark:
    """When a call started (time.monotonic())."""

    at: float


class LoopLag:
    """How late this process's event loop has been.

    While `running()`, a task wakes every `interval_s`; whenever it wakes late, the stall
    (from when it was due until it ran) is kept (the last `keep` of them). `since(mark)`
    sums the stalls' overlap with the time since `mark`, the stall in progress included
    (the loop may have just come back: the ticker has not run yet). Not running (a
    process that never started it): no lag is known, `since` is 0.
    """

    def __init__(self, interval_s: float = 0.05, *, min_stall_s: float = 0.005, keep: int = 512):
        self.interval_s = interval_s
        self.min_stall_s = min_stall_s
        self._stalls: deque[tuple[float, float]] = deque(maxlen=keep)
        self._last: float | None = None  # the last tick; None while not running

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopLag]:
        task = asyncio.create_task(self._tick(), name="loop-lag")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._last = None

    async def _tick(self) -> None:
        self._last = time.monotonic()
        while True:
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            due = self._last + self.interval_s
            if now - due >= self.min_stall_s:
                self._stalls.append((due, now))
            self._last = now

    def mark(self) -> LagMark:
        return LagMark(time.monotonic())

    def since(self, mark: LagMark) -> float:
        """Seconds the loop was stalled since `mark`."""
        if self._last is None:
            return 0.0
        now = time.monotonic()
        stalls = [*self._stalls, (self._last + self.interval_s, now)]  # + the one going on
        return sum(max(0.0, end - max(start, mark.at)) for start, end in stalls)

    def explains(self, mark: LagMark, timeout_s: float) -> bool:
        """True when a call that began at `mark` and timed out just now spent less than
        `LATE_SHARE` of `timeout_s` waiting while the loop ran: the loop's stalls, not
        Redis, took the rest."""
        if self._last is None:
            return False
        waited = time.monotonic() - mark.at
        return waited - self.since(mark) < LATE_SHARE * timeout_s
