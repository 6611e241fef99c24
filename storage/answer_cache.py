"""A Redis cache of whole answers (response bytes) under one generation per namespace.

Keys (under the app's Redis prefix, so every test and benchmark keeps its own):
- `{namespace}:gen`              the generation, a random token (no TTL);
- `{namespace}:{kind}:{digest}`  an answer's bytes as `b"<generation>\\n<body>"`, TTL
  `ttl_s`; `digest` hashes the normalised request (the caller's).

Hit: one round trip, `MGET {namespace}:gen {namespace}:{kind}:{digest}`; the entry counts
only if it was filled under the current generation. Miss: the source answers and the
entry is stored by a Lua script only if the generation is still the one the miss read
before it asked the source (`_STORE`), so an answer that may predate a bump is never
stored under the bump's generation. Invalidation is a bump: a new token, every entry
stored so far is never read again. The TTL bounds what a failed bump leaves behind.

Stampede: single flight per process: concurrent misses of one key, in one generation,
share one load (several replicas: at most one per replica).

Redis down or slow: the answer comes from the source (result `error`), and after
`breaker_threshold` failures in a row (timeouts only above that rate per second, and not
those that this process's own stalled event loop explains) Redis is skipped for
`breaker_open_s` (result `bypass`).

Users: the search answers (search/cache.py, namespace `search`) and the product list
pages (app/product_list_cache.py, namespace `catalog`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from storage.cache import delete_matching
from storage.redis_breaker import BreakerOpen, RedisBreaker, RedisFailed
from storage.redis_errors import LoopLag

CacheResult = Literal["hit", "miss", "error", "bypass"]
# a fill after a miss: stored; stale (the generation moved while the source answered);
# error (Redis failed)
FillResult = Literal["stored", "stale", "error"]
Loader = Callable[[], Awaitable[bytes]]

# Store the answer only if no bump happened since the miss read the generation. A
# generation absent then and now (a new prefix, an eviction) is created here.
_STORE = """
local gen = redis.call('GET', KEYS[1])
if not gen then
  if ARGV[1] ~= '' then return 0 end
  gen = ARGV[3]
  redis.call('SET', KEYS[1], gen)
elseif gen ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], gen .. '\\n' .. ARGV[2], 'PX', ARGV[4])
return 1
"""


class AnswerCache:
    """One per process and namespace (it holds the single-flight table and the breaker).
    `kind` names a family of answers inside the namespace (for the metrics). A subclass
    may name its namespace once (`NAMESPACE`) instead of at each construction."""

    NAMESPACE = ""

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = "",
        prefix: str,
        ttl_s: float,
        breaker_threshold: int = 5,
        breaker_open_s: float = 5.0,
        redis_timeout_s: float = 0.5,
        loop_lag: LoopLag | None = None,
        on_result: Callable[[str, CacheResult], None] | None = None,
        on_fill: Callable[[FillResult], None] | None = None,
        on_try_bump: Callable[[bool], None] | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.namespace = namespace or self.NAMESPACE
        if not self.namespace:
            raise ValueError("an answer cache needs a namespace")
        self.generation_key = f"{prefix}{self.namespace}:gen"
        self._breaker = RedisBreaker(
            f"redis-{self.namespace}-cache",
            threshold=breaker_threshold,
            open_s=breaker_open_s,
            redis_timeout_s=redis_timeout_s,
            loop_lag=loop_lag,
        )
        self._on_result = on_result or (lambda kind, result: None)
        self._on_fill = on_fill or (lambda result: None)
        self._on_try_bump = on_try_bump or (lambda bumped: None)
        self._inflight: dict[tuple[str, bytes | None], asyncio.Task[bytes]] = {}
        self._store = redis.register_script(_STORE)

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def entry_key(self, kind: str, digest: str) -> str:
        return f"{self.prefix}{self.namespace}:{kind}:{digest}"

    def pattern(self) -> str:
        """Every key of this cache (for a flush)."""
        return f"{self.prefix}{self.namespace}:*"

    # reads

    async def get_or_load(self, kind: str, digest: str, load: Loader) -> bytes:
        """The cached answer of this request, or `load()` (the source) on a miss, stored
        for the next caller. Redis failing never fails the request."""
        if not self.enabled:
            return await load()
        key = self.entry_key(kind, digest)
        try:
            gen, body = await self._read(key)
        except BreakerOpen:
            self._on_result(kind, "bypass")
            return await load()
        except RedisFailed:
            self._on_result(kind, "error")
            return await load()
        if body is not None:
            self._on_result(kind, "hit")
            return body
        self._on_result(kind, "miss")
        # join only a load that began in the same generation: one begun before a bump may
        # return what the bump made stale
        flight = (key, gen)
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.create_task(self._fill(key, gen, load))
            self._inflight[flight] = task
            task.add_done_callback(lambda t: self._settled(flight, t))
        # shield: one caller going away must not cancel the others' load
        return await asyncio.shield(task)

    async def peek(self, kind: str, digest: str) -> bytes | None:
        """The cached answer when there is one in the current generation (counted as a
        hit); None otherwise, Redis failures included, counting nothing: the caller goes
        on to `get_or_load`, which counts that request."""
        if not self.enabled or not self._breaker.closed:
            return None
        try:
            _, body = await self._read(self.entry_key(kind, digest))
        except (BreakerOpen, RedisFailed):
            return None
        if body is not None:
            self._on_result(kind, "hit")
        return body

    async def _read(self, key: str) -> tuple[bytes | None, bytes | None]:
        """One round trip: the current generation, and the body stored at `key` under
        it (None when absent or filled under another). Raises the breaker's errors."""
        generation, raw = await self._breaker.call(self.redis.mget(self.generation_key, key))
        gen = _as_bytes(generation)
        if raw is None or gen is None:
            return gen, None
        head, newline, body = (_as_bytes(raw) or b"").partition(b"\n")
        return gen, body if newline and head == gen else None

    def _settled(self, flight: tuple[str, bytes | None], task: asyncio.Task[bytes]) -> None:
        self._inflight.pop(flight, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    async def _fill(self, key: str, gen: bytes | None, load: Loader) -> bytes:
        body = await load()
        try:
            stored = await self._breaker.call(
                self._store(
                    keys=[self.generation_key, key],
                    args=[gen or b"", body, secrets.token_hex(8), max(1, int(self.ttl_s * 1000))],
                )
            )
        except (BreakerOpen, RedisFailed):
            self._on_fill("error")
            return body
        self._on_fill("stored" if stored else "stale")
        return body

    # invalidation

    async def bump(self) -> str:
        """A new generation: every entry stored so far is never read again. Call it once
        the writes it covers are visible to the source's readers. Raises if Redis fails."""
        token = secrets.token_hex(8)
        await self.redis.set(self.generation_key, token)
        return token

    async def try_bump(self) -> bool:
        """`bump`, for a writer whose commit is done: False when Redis failed, never
        raised; either outcome is reported to `on_try_bump` (the wiring counts and logs
        it, whichever writer bumped). Nothing to do (True) when the cache is off."""
        if not self.enabled:
            return True
        try:
            await self.bump()
        except (RedisError, OSError, TimeoutError):
            self._on_try_bump(False)
            return False
        self._on_try_bump(True)
        return True

    async def flush(self) -> int:
        """Delete every key of this cache, the generation included; how many."""
        return await delete_matching(self.redis, self.pattern())


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
