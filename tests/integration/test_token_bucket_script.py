"""The limiter's Lua script (app/middleware/token_bucket.py: LUA_TAKE) on the real Redis:
the same decisions as the pure math (`take`), one string per bucket, the read keys only
for an allowed request, and a bucket left in another layout counted as full once."""

from __future__ import annotations

import math
from typing import Any

from app.middleware.ratelimit import script_args
from app.middleware.token_bucket import LUA_TAKE, Bucket, BucketState, take
from app.stores import Stores

ADDRESS = Bucket(capacity=3, rate=0.5)
KEY = Bucket(capacity=2, rate=0.25)


async def _take(stores: Stores, keys: list[str], buckets: list[Bucket]) -> list[Any]:
    script = stores.redis.register_script(LUA_TAKE)
    return list(await script(keys=keys, args=script_args(buckets), client=stores.redis))


async def _stored(stores: Stores, name: str) -> tuple[float, float]:
    """(tokens, ts) of a bucket as the script stored it."""
    raw = await stores.redis.get(name)
    assert isinstance(raw, bytes), raw
    tokens, ts = raw.split()
    return float(tokens), float(ts)


async def test_the_script_decides_as_the_math_and_keeps_one_string_per_bucket(
    stores: Stores,
) -> None:
    prefix = stores.settings.redis_prefix
    a, k, value = f"{prefix}t:a", f"{prefix}t:k", f"{prefix}t:value"
    await stores.redis.set(value, b"cached")
    states: list[BucketState | None] = [None, None]
    for attempt in range(4):
        got = await _take(stores, [a, k, value], [ADDRESS, KEY])
        _tokens, now = await _stored(stores, a)  # the script's clock (Redis' TIME)
        decision, after = take(list(zip([ADDRESS, KEY], states, strict=True)), now)
        allowed, limit, remaining, retry_ms, reset_ms, tightest = map(int, got[0].split())
        assert (allowed, limit, remaining, tightest) == (
            int(decision.allowed),
            decision.limit,
            decision.remaining,
            decision.tightest,
        ), attempt
        # milliseconds, rounded up by the script (one ms of float rounding allowed)
        assert abs(retry_ms - math.ceil(decision.retry_after_s * 1000)) <= 1, attempt
        assert abs(reset_ms - math.ceil(decision.reset_s * 1000)) <= 1, attempt
        # the read key's value only for an allowed request
        assert got[1:] == ([b"cached"] if decision.allowed else [])
        for name, state in zip((a, k), after, strict=True):
            assert await stores.redis.type(name) == b"string"
            assert 0 < await stores.redis.ttl(name) <= 10  # capacity / rate + 1
            tokens, ts = await _stored(stores, name)
            assert abs(tokens - state.tokens) < 1e-3 and ts == now
        states = list(after)
    # the key's bucket (2 tokens) refused the third request and the fourth
    assert [state.tokens < 1 for state in after] == [False, True]


async def test_a_bucket_in_another_layout_counts_as_full_once_and_is_replaced(
    stores: Stores,
) -> None:
    prefix = stores.settings.redis_prefix
    legacy, junk = f"{prefix}t:legacy", f"{prefix}t:junk"
    await stores.redis.hset(legacy, mapping={"tokens": "0", "ts": "0"})  # the hash layout
    await stores.redis.set(junk, b"not a bucket")
    for name in (legacy, junk):
        got = await _take(stores, [name], [ADDRESS])
        assert got[0].split()[:3] == [b"1", b"3", b"2"], name  # full (3), one token taken
        assert await stores.redis.type(name) == b"string"
        got = await _take(stores, [name], [ADDRESS])
        assert got[0].split()[:3] == [b"1", b"3", b"1"], name  # and counted from there on
