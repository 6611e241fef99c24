"""Tell a sick Redis from a busy process.

A refused or reset connection is Redis (or the network) failing. A timeout is ambiguous:
when this process's event loop is busy (a burst of requests on a small machine), the
answer may have arrived in time but been read too late, and the client's timer fires
first. So callers retry a timed-out call once (a healthy Redis answers it) and treat
timeouts as an outage only above a rate (`TimeoutRate`), never one by one.
"""

from __future__ import annotations

import time
from collections import deque

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def is_timeout(exc: BaseException) -> bool:
    # redis-py raises its own TimeoutError (a ConnectionError subclass) or the builtin one
    return isinstance(exc, RedisTimeoutError | TimeoutError)


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
