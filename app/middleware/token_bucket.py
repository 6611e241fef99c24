"""Token bucket: the math (pure, unit-tested) and the same math as an atomic Redis script.

A bucket holds at most `capacity` tokens and gains `rate` tokens per second; a request
takes `cost` tokens or is refused. One request may be checked against several buckets
(its API key and its address): it passes only if every bucket has the tokens, and then
takes them from all, so a refused request costs nothing anywhere.

Redis keeps per bucket one string "<tokens> <ts>"; the script reads the clock from Redis
(`TIME`), so replicas with skewed clocks share one time line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    capacity: float
    rate: float  # tokens per second


@dataclass(frozen=True)
class BucketState:
    tokens: float
    ts: float  # seconds, when `tokens` was measured


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # capacity of the tightest bucket
    remaining: int  # whole tokens left in the tightest bucket
    retry_after_s: float  # 0 when allowed
    reset_s: float  # until the tightest bucket is full again
    tightest: int = 0  # index of the tightest bucket (the one that refused, if refused)
    # the values of the keys the check was asked to read as well (allowed requests only)
    read: tuple[bytes | None, ...] = ()


def refill(bucket: Bucket, state: BucketState | None, now: float) -> float:
    """Tokens in the bucket at `now` (a new bucket starts full)."""
    if state is None:
        return bucket.capacity
    elapsed = max(0.0, now - state.ts)  # a clock going backwards adds nothing
    return min(bucket.capacity, state.tokens + elapsed * bucket.rate)


def take(
    buckets: list[tuple[Bucket, BucketState | None]], now: float, cost: float = 1.0
) -> tuple[Decision, list[BucketState]]:
    """Decide one request against every bucket; return the decision and the new states."""
    levels = [refill(bucket, state, now) for bucket, state in buckets]
    allowed = all(level >= cost for level in levels)
    after = [level - cost if allowed else level for level in levels]
    retry = 0.0
    if not allowed:
        retry = max(
            (cost - level) / bucket.rate
            for (bucket, _), level in zip(buckets, levels, strict=True)
            if level < cost
        )
    # the tightest bucket is the one with the fewest whole requests left
    tight = min(range(len(buckets)), key=lambda i: after[i])
    bucket = buckets[tight][0]
    decision = Decision(
        allowed=allowed,
        limit=int(bucket.capacity),
        remaining=max(0, math.floor(after[tight] / cost)),
        retry_after_s=retry,
        reset_s=(bucket.capacity - after[tight]) / bucket.rate,
        tightest=tight,
    )
    return decision, [BucketState(level, now) for level in after]


def idle_ttl_s(bucket: Bucket) -> int:
    """After this long untouched a bucket is full again, so Redis may forget it."""
    return math.ceil(bucket.capacity / bucket.rate) + 1


# KEYS: one per bucket, then any keys to read. ARGV: cost, then capacity, rate, ttl for
# each bucket (so the buckets are the first (#ARGV - 1) / 3 keys).
# Returns {"allowed limit remaining retry_after_ms reset_ms tightest"}: one string of
# integers (tightest 0-based; one bulk string parses faster in the client than six
# integer replies). When allowed,
# the values of the keys to read follow (nil for a missing one): a request's own read
# (the product cache's value and floor) rides on the limiter's round trip. A refused
# request gets none back.
#
# A bucket is one string "<tokens> <ts>" (SET ... EX), read with the other keys in one
# MGET: each `redis.call` costs the script several microseconds of Redis' time whatever
# the command, so the anonymous cached read makes 3 (TIME, MGET, SET) where a hash per
# bucket made 5 (TIME, HMGET, HSET, EXPIRE, MGET). A key that holds no such string (a
# hash bucket of the previous layout: MGET reads it as nil) counts as a full bucket once
# and is overwritten.
LUA_TAKE = """
local cost = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = (#ARGV - 1) / 3
local got = redis.call('MGET', unpack(KEYS))
local levels, caps, rates = {}, {}, {}
local allowed = true
for i = 1, n do
  local cap = tonumber(ARGV[2 + (i - 1) * 3])
  local rate = tonumber(ARGV[3 + (i - 1) * 3])
  local level = cap
  local state = got[i]
  local sep = state and string.find(state, ' ', 1, true)
  if sep then
    local tokens = tonumber(string.sub(state, 1, sep - 1))
    local ts = tonumber(string.sub(state, sep + 1))
    if tokens and ts then
      level = math.min(cap, tokens + math.max(0, now - ts) * rate)
    end
  end
  levels[i], caps[i], rates[i] = level, cap, rate
  if level < cost then allowed = false end
end
local retry = 0
local tight = 1
for i = 1, n do
  if allowed then levels[i] = levels[i] - cost end
  if not allowed and levels[i] < cost then
    retry = math.max(retry, (cost - levels[i]) / rates[i])
  end
  if levels[i] < levels[tight] then tight = i end
  redis.call('SET', KEYS[i], string.format('%.6f %.6f', levels[i], now),
             'EX', tonumber(ARGV[4 + (i - 1) * 3]))
end
local remaining = math.max(0, math.floor(levels[tight] / cost))
local reset = (caps[tight] - levels[tight]) / rates[tight]
local out = {string.format('%d %d %d %d %d %d', allowed and 1 or 0, caps[tight], remaining,
                           math.ceil(retry * 1000), math.ceil(reset * 1000), tight - 1)}
if allowed then
  for i = n + 1, #KEYS do out[1 + i - n] = got[i] end
end
return out
"""
