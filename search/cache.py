"""Redis cache of search answers: `GET /search/products`, `GET /search/suggest` and the
storefront's search page and autocomplete (all through `search.product_search`).

Keys (under the app's Redis prefix, so every test and benchmark keeps its own):
- `search:gen`            the search generation, a random token (no TTL);
- `search:{kind}:{digest}` the answer's JSON bytes as `b"<generation>\\n<body>"`, TTL
  `ttl_s`. `digest` hashes the normalised request (`request_key`): the engine kind, the
  index alias, and the very body sent to the engine (every parameter that changes the
  answer is in it: q as the builder strips it, filters, sort, search_after from the
  cursor, size, highlight) plus the page size and sort name the answer's cursor is made
  from.

Hit: one round trip, `MGET search:gen search:{kind}:{digest}`; the entry counts only if
it was filled under the current generation. Miss: the engine answers and the entry is
stored by a Lua script only if the generation is still the one the miss read before it
asked the engine (`_STORE`), so an answer that may predate a bump is never stored under
the bump's generation.

Freshness: the search consumer bumps the generation after each batch it applied, once
the batch's writes are visible to searches (its bulk waits for the refresh), a reindex
after its alias swap and final refresh, a reconcile after its repairs (and a refresh).
So a cached answer is at most as old as the index plus the moment between that refresh
and the bump; the TTL bounds everything else (a bump that failed, a worker that died
between its refresh and its bump).

Stampede: single flight per process: concurrent misses of one key, in one generation,
share one engine request (several replicas: at most one per replica).

Redis down or slow: the search answers from the engine (result `error`), and after
`breaker_threshold` failures in a row (timeouts only above that rate per second, and not
those that this process's own stalled event loop explains) Redis is skipped for
`breaker_open_s` (result `bypass`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from redis.asyncio import Redis

from storage.cache import delete_matching
from storage.redis_breaker import BreakerOpen, RedisBreaker, RedisFailed
from storage.redis_errors import LoopLag

CacheResult = Literal["hit", "miss", "error", "bypass"]
# a fill after a miss: stored; stale (the generation moved while the engine answered);
# error (Redis failed)
FillResult = Literal["stored", "stale", "error"]
Kind = Literal["products", "suggest"]
Loader = Callable[[], Awaitable[bytes]]

# Changes whenever the cached bytes would change for the same request (their shape):
# old entries are then never read, in a rolling deploy too.
FORMAT = "1"

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


def request_key(
    kind: Kind, engine: str, index: str, body: Mapping[str, Any], **shaping: Any
) -> str:
    """The digest of a normalised search request: two requests share an entry exactly when
    the engine gets the same request and the answer is shaped the same way (`shaping`:
    what the response is made of beyond the engine's answer, e.g. the sort name and page
    size of the next cursor)."""
    canonical = json.dumps(
        [FORMAT, kind, engine, index, body, shaping],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class SearchCache:
    """One per process (it holds the single-flight table and the breaker)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        ttl_s: float,
        breaker_threshold: int = 5,
        breaker_open_s: float = 5.0,
        redis_timeout_s: float = 0.5,
        loop_lag: LoopLag | None = None,
        on_result: Callable[[Kind, CacheResult], None] | None = None,
        on_fill: Callable[[FillResult], None] | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.generation_key = f"{prefix}search:gen"
        self._breaker = RedisBreaker(
            "redis-search-cache",
            threshold=breaker_threshold,
            open_s=breaker_open_s,
            redis_timeout_s=redis_timeout_s,
            loop_lag=loop_lag,
        )
        self._on_result = on_result or (lambda kind, result: None)
        self._on_fill = on_fill or (lambda result: None)
        self._inflight: dict[tuple[str, bytes | None], asyncio.Task[bytes]] = {}
        self._store = redis.register_script(_STORE)

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def entry_key(self, kind: Kind, digest: str) -> str:
        return f"{self.prefix}search:{kind}:{digest}"

    def pattern(self) -> str:
        """Every key of this cache (for a flush)."""
        return f"{self.prefix}search:*"

    # reads

    async def get_or_load(self, kind: Kind, digest: str, load: Loader) -> bytes:
        """The cached answer of this request, or `load()` (the engine) on a miss, stored
        for the next caller. Redis failing never fails the search."""
        if not self.enabled:
            return await load()
        key = self.entry_key(kind, digest)
        try:
            generation, raw = await self._breaker.call(self.redis.mget(self.generation_key, key))
        except BreakerOpen:
            self._on_result(kind, "bypass")
            return await load()
        except RedisFailed:
            self._on_result(kind, "error")
            return await load()
        gen = _as_bytes(generation)
        if raw is not None and gen is not None:
            head, newline, body = _as_bytes(raw).partition(b"\n")  # type: ignore[union-attr]
            if newline and head == gen:
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
        """A new search generation: every entry stored so far is never read again. Call it
        once the index writes it covers are visible to searches. Raises if Redis fails."""
        token = secrets.token_hex(8)
        await self.redis.set(self.generation_key, token)
        return token

    async def flush(self) -> int:
        """Delete every key of this cache, the generation included; how many."""
        return await delete_matching(self.redis, self.pattern())


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
