"""Redis read cache of product responses: cache-aside, versioned, race- and stampede-safe.

Keys (under the configured prefix), per data generation `{g}` and product id:
- `product:{g}:{id}`       the serialized response as `b"<version>\\n<body>"`, jittered TTL;
- `product:{g}:{id}:floor` the highest version a writer has invalidated (the "version
  floor"), kept `floor_ttl_ms` after the last write: as long as the stale-set race needs;
- `product:{g}:{id}:lease` who is loading a cold key right now (other replicas wait for it).

`kind` ("product" by default) names the keys: the order read (app/order_cache.py) keeps
its responses in a cache of kind "order", with every rule below.

Generation: derived state must not outlive the database state it was derived from. The
generation (storage/generation.py) changes when Postgres goes back in time (a restore, a
failover to a replica that was behind); a new generation never reads an old one's keys,
so neither cached rows from the lost future nor floors ahead of the restored versions
survive it. Reads re-read it every `generation_check_s`; a write reads it every time
and also invalidates the previous generation for a while after a change, because other
replicas may still read that one until their next check.

Stale-set race: a reader reads the floor BEFORE it reads Postgres and fills the cache only
if, atomically (Lua), the floor is still the one it saw and its version is not below it. A
write bumps the floor after its commit, so a reader that read the old row before the commit
cannot put it back once the write has returned (design guarantee 3).

The floor guards a fill only while it exists, so a fill whose load took longer than half
the floor's lifetime is not stored (its floor may have expired meanwhile).

Stampede: one load per key per process at a time (single flight, keyed by the floor seen,
so a caller arriving after a write never joins a load begun before it), plus a short Redis
lease so that other replicas poll the key briefly instead of all reading Postgres. They
poll the value and the lease together, with a short backoff, and stop as soon as the
loader has stored the value or released its lease without storing (a refused fill, a
failed load): they never sleep the whole wait for nothing.

One round trip: a caller that talks to Redis anyway before the read (the app's rate
limiter) may read the value and the floor for it (`read_plan`, then
`get_or_load(prefetched=...)`): the same two keys, read together in one atomic call, after
the request arrived and before any Postgres read, so every guarantee above holds. It is
used only when nothing failed since it was planned (no outage to catch up on), in the
same generation, for the same product; otherwise the read makes its own MGET.

Redis down: a circuit breaker (purgatory) opens after N consecutive failures; while open,
reads go straight to Postgres without touching Redis, then one request probes it again.
A process that saw Redis fail catches up before it serves from Redis again: it applies
every invalidation still waiting in the outbox (`catch_up`), i.e. writes that nobody could
invalidate while Redis was out of reach, so their old bytes are not served after it heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis

from storage.cache import delete_matching
from storage.redis_breaker import (
    BreakerOpen,
    BreakerState,
    RedisBreaker,
    RedisFailed,
)
from storage.redis_errors import LoopLag

CacheResult = Literal["hit", "miss", "error", "bypass"]
# a fill: stored, refused by the floor guard, or skipped because its load was too slow
FillResult = Literal["stored", "refused", "slow"]
GenerationSource = Callable[[], Awaitable[str]]
Flight = tuple[int, str, bytes | None]  # product id, generation, floor seen
# (product id, version) pairs whose invalidation may not have been applied yet
CatchUp = Callable[[], Awaitable[Iterable[tuple[int, int]]]]
CIRCUIT = "redis-product-cache"
FLOOR_TTL_MS = 30_000  # default; refreshed by every write of the product
POLL_FIRST_S = 0.002  # lease waiters poll from this interval, doubling ...
POLL_MAX_S = 0.025  # ... up to this one
NO_GENERATION = "0"  # a cache built without a generation source (unit tests)
MAX_MISSED = 10_000

# Fill only if no write has bumped the floor since the reader looked at it.
_SET_IF_FRESH = """
local floor = redis.call('GET', KEYS[2])
if (floor or '') ~= ARGV[1] then return 0 end
if floor and tonumber(ARGV[2]) < tonumber(floor) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
"""

# Raise the floor to the written version and drop any cached value older than it. An old
# event replayed by the relay leaves a newer cached value alone.
_INVALIDATE = """
local v = tonumber(ARGV[1])
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if v > floor then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local nl = string.find(cur, '\\n', 1, true)
  local cv = nl and tonumber(string.sub(cur, 1, nl - 1))
  if cv == nil or cv < v then redis.call('DEL', KEYS[1]) end
end
return 1
"""

_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One cached response: the row version (the ETag) and the response body."""

    version: int
    body: bytes

    def encode(self) -> bytes:
        return b"%d\n%b" % (self.version, self.body)

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        head, _, body = raw.partition(b"\n")
        return cls(int(head), body)


Loader = Callable[[], Awaitable[Entry | None]]


@dataclass(frozen=True)
class ReadPlan:
    """The keys a read of one product would MGET now, for another round trip (the rate
    limiter's script) to read on its behalf; `epoch` is the cache's outage count then."""

    product_id: int
    generation: str
    epoch: int
    keys: tuple[str, str]  # value, floor

    def read(self, values: tuple[bytes | None, ...]) -> Prefetched:
        raw, floor = values
        return Prefetched(self, raw, floor)


@dataclass(frozen=True)
class Prefetched:
    """What a ReadPlan's keys held, read in one atomic call (the value and its floor
    together, as `_read`'s MGET reads them)."""

    plan: ReadPlan
    raw: bytes | None
    floor: bytes | None


def _noop_result(result: CacheResult) -> None:
    return None


def _noop_state(state: BreakerState) -> None:
    return None


def _noop_fill(result: FillResult) -> None:
    return None


class ProductCache:
    """One per process (it holds the single-flight table and the breaker)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        ttl_s: int,
        ttl_jitter: float,
        lease_ms: int = 2000,
        lease_wait_ms: int = 1000,
        breaker_threshold: int = 5,
        breaker_open_s: float = 5.0,
        on_result: Callable[[CacheResult], None] = _noop_result,
        on_breaker_state: Callable[[BreakerState], None] = _noop_state,
        catch_up: CatchUp | None = None,
        generation: GenerationSource | None = None,
        generation_check_s: float = 5.0,
        floor_ttl_ms: int = FLOOR_TTL_MS,
        on_fill: Callable[[FillResult], None] = _noop_fill,
        loop_lag: LoopLag | None = None,
        redis_timeout_s: float = 0.5,
        kind: str = "product",
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.kind = kind  # names the keys: another kind of response is another cache
        self.ttl_s = ttl_s
        self.ttl_jitter = ttl_jitter
        self.lease_ms = lease_ms
        self.lease_wait_ms = lease_wait_ms
        self.breaker_open_s = breaker_open_s
        self._on_result = on_result
        self._breaker = RedisBreaker(
            f"{CIRCUIT}:{kind}",
            threshold=breaker_threshold,
            open_s=breaker_open_s,
            redis_timeout_s=redis_timeout_s,
            loop_lag=loop_lag,
            on_state=on_breaker_state,
        )
        self._inflight: dict[Flight, asyncio.Task[Entry | None]] = {}
        # This replica never serves what it failed to invalidate, even before the outbox
        # relay catches up. With `catch_up` (the app's cache): a Redis call that fails or
        # is skipped by the breaker sets `_outage_seen`, and the next read first applies
        # the outbox's undelivered invalidations, other replicas' writes included.
        # Without it: the invalidations this process could not apply are kept in
        # `_missed` and re-applied before its next read (bounded; past the bound the
        # relay alone does).
        self._missed: dict[int, int] = {}
        self._catch_up = catch_up
        self._outage_seen = False
        # +1 whenever `_outage_seen` is set: a prefetched read is used only if no failure
        # (and so no catch-up) happened between its plan and its use
        self._outage_epoch = 0
        self.floor_ttl_ms = floor_ttl_ms
        self._on_fill = on_fill
        self._generation_source = generation
        self.generation_check_s = generation_check_s
        self.generation = NO_GENERATION
        self._generation_read_at = -math.inf
        # the generation before the last change, and until when writes invalidate it too
        self._previous: tuple[str, float] | None = None
        self._generation_lock = asyncio.Lock()
        self._set_if_fresh = redis.register_script(_SET_IF_FRESH)
        self._invalidate = redis.register_script(_INVALIDATE)
        self._release = redis.register_script(_RELEASE_LEASE)

    # keys

    def value_key(self, product_id: int, generation: str | None = None) -> str:
        return f"{self.prefix}{self.kind}:{generation or self.generation}:{product_id}"

    def floor_key(self, product_id: int, generation: str | None = None) -> str:
        return f"{self.value_key(product_id, generation)}:floor"

    def lease_key(self, product_id: int, generation: str | None = None) -> str:
        return f"{self.value_key(product_id, generation)}:lease"

    def pattern(self) -> str:
        """Every key of this cache, of every generation (for a flush)."""
        return f"{self.prefix}{self.kind}:*"

    # generation

    async def refresh_generation(self, *, force: bool = False) -> str:
        """The current generation, re-read from Postgres when the last read is older than
        `generation_check_s` (or always, with `force`). Raises if it cannot be read."""
        if self._generation_source is None:
            return self.generation
        if not force and time.monotonic() - self._generation_read_at < self.generation_check_s:
            return self.generation
        async with self._generation_lock:  # one read per process at a time
            if not force and (
                time.monotonic() - self._generation_read_at < self.generation_check_s
            ):
                return self.generation  # another caller read it while we waited
            read_at = time.monotonic()
            current = await self._generation_source()
            if current != self.generation:
                if self.generation != NO_GENERATION:
                    # other replicas may read the old one until their next check
                    self._previous = (self.generation, read_at + 2 * self.generation_check_s)
                self.generation = current
            self._generation_read_at = read_at
        return self.generation

    def _generations_to_invalidate(self) -> list[str]:
        gens = [self.generation]
        if self._previous is not None and time.monotonic() < self._previous[1]:
            gens.append(self._previous[0])
        return gens

    # reads

    def fresh_generation(self) -> str | None:
        """The generation when it needs no re-read now (for a caller that keys other
        derived state by it without I/O); None when a re-read is due."""
        if self._generation_source is not None and (
            self.generation == NO_GENERATION
            or time.monotonic() - self._generation_read_at >= self.generation_check_s
        ):
            return None
        return self.generation

    def read_plan(self, product_id: int) -> ReadPlan | None:
        """The keys `get_or_load` would read for this product now, so that a round trip
        the request makes anyway (the rate limiter's) can read them for it; None when the
        read has work to do first (the generation is due for a re-read, an outage to
        catch up on, missed invalidations, a breaker that is not closed)."""
        if self._outage_seen or self._missed:
            return None
        if not self._breaker.closed:
            return None
        gen = self.fresh_generation()
        if gen is None:
            return None
        keys = (self.value_key(product_id, gen), self.floor_key(product_id, gen))
        return ReadPlan(product_id, gen, self._outage_epoch, keys)

    def _usable(self, prefetched: Prefetched | None, product_id: int, gen: str) -> bool:
        """A prefetched read stands in for `_read` only if it read this product in this
        generation and nothing failed since it was planned (nothing to catch up on: it
        was read after every write that had returned when the request arrived)."""
        if prefetched is None:
            return False
        plan = prefetched.plan
        return (
            plan.product_id == product_id
            and plan.generation == gen
            and plan.keys[0] == self.value_key(product_id, gen)  # this cache's, not another's
            and plan.epoch == self._outage_epoch
            and not self._outage_seen
            and not self._missed
        )

    async def get_or_load(
        self, product_id: int, load: Loader, prefetched: Prefetched | None = None
    ) -> Entry | None:
        """The cached entry, or `load()` (Postgres) on a miss, filling the cache safely.
        None means the product does not exist (not cached: creation needs no invalidation).
        `prefetched`: the value and floor read by the request's limiter call (read_plan),
        used instead of a second round trip when still valid."""
        try:
            await self.refresh_generation()
        except Exception:  # Postgres: keep the generation we have; if none yet, skip Redis
            if self._generation_source is not None and self.generation == NO_GENERATION:
                self._on_result("bypass")
                return await load()
        started = time.monotonic()
        try:
            gen = self.generation  # the whole read stays in it, even if it changes meanwhile
            if self._usable(prefetched, product_id, gen):
                assert prefetched is not None
                raw, token = prefetched.raw, prefetched.floor
            else:
                if self._catch_up is not None:
                    if self._outage_seen:
                        await self._catch_up_after_outage()
                elif self._missed:
                    await self._guarded(self._apply_missed())
                gen = self.generation
                raw, token = await self._guarded(self._read(product_id, gen))
        except _Bypass as bypass:
            self._on_result(bypass.result)
            return await load()
        if raw is not None:
            self._on_result("hit")
            return Entry.decode(raw)
        self._on_result("miss")
        # Join only a load that saw the same floor: one started before a write that has
        # since invalidated (floor moved) may return the old row, which this caller, coming
        # after the write, must not get.
        flight = (product_id, gen, token)
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.create_task(self._fill(product_id, gen, token, load, started))
            self._inflight[flight] = task
            task.add_done_callback(lambda t: self._settled(flight, t))
        # shield: one caller going away (client disconnect) must not cancel the others' load
        return await asyncio.shield(task)

    def _settled(self, flight: Flight, task: asyncio.Task[Entry | None]) -> None:
        self._inflight.pop(flight, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone (no "never retrieved")

    async def _read(self, product_id: int, gen: str) -> tuple[bytes | None, bytes | None]:
        # One MGET: the value, and the floor a miss will need (cheaper than a pipeline).
        raw, floor = await self.redis.mget(
            self.value_key(product_id, gen), self.floor_key(product_id, gen)
        )
        return _as_bytes(raw), _as_bytes(floor)

    async def _fill(
        self, product_id: int, gen: str, token: bytes | None, load: Loader, started: float
    ) -> Entry | None:
        lease = uuid.uuid4().hex
        lease_key = self.lease_key(product_id, gen)
        try:
            got_lease = await self._guarded(
                self.redis.set(lease_key, lease, nx=True, px=self.lease_ms)
            )
        except _Bypass:
            return await load()
        if not got_lease:
            waited = await self._wait_for_other_replica(product_id, gen)
            if waited is not None:
                return waited
        else:
            # Double check: the previous holder may have filled the key between our miss
            # and our lease (its load finished in that window).
            filled = await self._quietly(self.redis.get(self.value_key(product_id, gen)))
            if isinstance(filled, bytes):
                await self._quietly(self._release(keys=[lease_key], args=[lease]))
                return Entry.decode(filled)
        try:
            entry = await load()
            if entry is not None:
                if time.monotonic() - started > self.floor_ttl_ms / 2000:
                    # the floor this fill was checked against may have expired by now
                    self._on_fill("slow")
                else:
                    await self._store(product_id, gen, token, entry)
            return entry
        finally:
            if got_lease:
                await self._quietly(self._release(keys=[lease_key], args=[lease]))

    async def _wait_for_other_replica(self, product_id: int, gen: str) -> Entry | None:
        """Another replica holds the lease: poll the value it will store and its lease, and
        stop as soon as either the value is there or the lease is gone without one (the
        loader failed, or its fill was refused): then the caller loads for itself."""
        deadline = time.monotonic() + self.lease_wait_ms / 1000
        interval = POLL_FIRST_S
        value_key, lease_key = self.value_key(product_id, gen), self.lease_key(product_id, gen)
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            interval = min(interval * 2, POLL_MAX_S)
            try:
                raw, lease = await self._guarded(self.redis.mget(value_key, lease_key))
            except _Bypass:
                return None
            if isinstance(raw, bytes):
                return Entry.decode(raw)
            if lease is None:  # released without a value (the loader stores before it)
                return None
        return None

    async def _store(self, product_id: int, gen: str, token: bytes | None, entry: Entry) -> bool:
        ttl_ms = int(self.ttl_s * 1000 * (1 + random.uniform(-self.ttl_jitter, self.ttl_jitter)))
        stored = await self._quietly(
            self._set_if_fresh(
                keys=[self.value_key(product_id, gen), self.floor_key(product_id, gen)],
                args=[token or b"", entry.version, entry.encode(), max(ttl_ms, 1)],
            )
        )
        if stored is not None:  # None: Redis failed (counted as an error already)
            self._on_fill("stored" if stored else "refused")
        return bool(stored)

    async def store_if_fresh(self, product_id: int, token: bytes | None, entry: Entry) -> bool:
        """Fill the cache with `entry` read after `token` (the floor) was seen; refused if a
        write invalidated the product in between. Exposed for the race tests."""
        return await self._store(product_id, self.generation, token, entry)

    async def read_floor(self, product_id: int) -> bytes | None:
        await self.refresh_generation()
        floor = await self.redis.get(self.floor_key(product_id))
        return floor if isinstance(floor, bytes) else None

    # writes

    async def invalidate(self, product_id: int, version: int) -> bool:
        """Request path, after the commit: best effort (the outbox consumer retries it).
        Reads the generation first: a write must reach the keys every replica reads."""
        # Postgres just committed this write; if it is gone now, keep the one we have
        with contextlib.suppress(Exception):
            await self.refresh_generation(force=True)
        try:
            await self._guarded(self._invalidate_many([(product_id, version)]))
        except _Bypass as bypass:
            self._on_result(bypass.result)
            # with `catch_up`, the catch-up after the outage applies it from the outbox
            if self._catch_up is None and (
                product_id in self._missed or len(self._missed) < MAX_MISSED
            ):
                self._missed[product_id] = max(version, self._missed.get(product_id, 0))
            return False
        return True

    async def _catch_up_after_outage(self) -> None:
        """Before the first read from Redis after a failure: apply the invalidations the
        outbox still holds (raises _Bypass while Redis or Postgres still fails)."""
        assert self._catch_up is not None
        if await self._breaker.is_open():
            raise _Bypass("bypass")  # no use asking Postgres yet
        # Cleared before reading the outbox: a Redis failure while we catch up (another
        # request's) sets it again, and the next read catches up once more.
        self._outage_seen = False
        try:
            pending = list(await self._catch_up())
        except Exception as exc:  # Postgres: the read falls back to it and fails there
            self._note_outage()
            raise _Bypass("bypass") from exc
        if pending:
            await self._guarded(self._invalidate_many(pending))  # a failure sets it again

    async def _apply_missed(self) -> None:
        missed = dict(self._missed)
        await self._invalidate_many(missed.items())
        for product_id, version in missed.items():
            if self._missed.get(product_id) == version:
                del self._missed[product_id]

    async def invalidate_strict(self, changes: Iterable[tuple[int, int]]) -> None:
        """Relay path: raises if Redis (or Postgres, for the generation) is down, so the
        events are retried later."""
        await self.refresh_generation(force=True)
        await self._invalidate_many(changes)

    async def _invalidate_many(self, changes: Iterable[tuple[int, int]]) -> None:
        changes = list(changes)
        gens = self._generations_to_invalidate()
        if len(changes) == 1 and len(gens) == 1:
            # One EVALSHA (the script loads itself on NOSCRIPT). A pipeline would cost a
            # second round trip: redis-py sends SCRIPT EXISTS before every pipeline that
            # runs a script. This is the request path of every product write.
            await self._invalidate(
                keys=self._invalidate_keys(changes[0][0], gens[0]),
                args=[changes[0][1], self.floor_ttl_ms],
            )
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for gen in gens:
                for product_id, version in changes:
                    await self._invalidate(
                        keys=self._invalidate_keys(product_id, gen),
                        args=[version, self.floor_ttl_ms],
                        client=pipe,
                    )
            await pipe.execute()

    def _invalidate_keys(self, product_id: int, generation: str) -> list[str]:
        return [self.value_key(product_id, generation), self.floor_key(product_id, generation)]

    async def flush(self) -> int:
        """Delete every key of this cache, of every generation (values, floors, leases);
        returns how many. For the restore procedure: `polyshop cache flush`."""
        return await delete_matching(self.redis, self.pattern())

    def _note_outage(self) -> None:
        self._outage_seen = True
        self._outage_epoch += 1

    # breaker

    async def breaker_state(self) -> BreakerState:
        return await self._breaker.state()

    async def _guarded(self, op: Awaitable[T]) -> T:
        """Run one Redis operation behind the breaker; raise _Bypass if it is open or failed."""
        try:
            return await self._breaker.call(op)
        except BreakerOpen as exc:
            self._note_outage()
            raise _Bypass("bypass") from exc
        except RedisFailed as exc:
            self._note_outage()
            raise _Bypass("error") from exc

    async def _quietly(self, op: Awaitable[Any]) -> Any:
        try:
            return await self._guarded(op)
        except _Bypass as bypass:
            self._on_result(bypass.result)
            return None


class _Bypass(Exception):
    def __init__(self, result: CacheResult) -> None:
        super().__init__(result)
        self.result: CacheResult = result


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
