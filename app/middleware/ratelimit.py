"""Rate limiting per API key and per client address: token buckets in Redis.

Every request takes a token from its client address's bucket (`kit/client_address.py`:
behind a trusted proxy, the client it forwarded); a request with a bearer token
also takes one from that key's bucket (named by a hash of the token, never the token).
Refused: 429 problem+json with `Retry-After` (seconds). Every limited response carries
`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (the tightest bucket).

A cached product read (`GET /products/{id}`) is served on the same round trip: the
script also reads the cache's value and version floor for it (app/product_prefetch.py),
so with the limiter on that read costs one Redis call, not two; so is an authenticated
`GET /orders/{id}` from the order cache (app/order_cache.py).

Where nginx fronts the app, the per-address limit can live there instead
(`rate_limit_address_in_proxy`: nginx's `limit_req`, same rate and burst, 429 with
`Retry-After`): the app then checks only the key bucket, and an anonymous request costs
no Redis round trip for its limit. Deployments without nginx keep both buckets here.

Redis down: requests pass (fail open) and `polyshop_ratelimit_errors_total` counts it;
after a failure Redis is left alone for `rate_limit_fail_open_s` so a sick Redis does not
add its timeout to every request. A sick Redis is told from a busy process
(storage/redis_errors.py): a refused connection is an outage at once; a timed-out call
is retried once (under a burst the event loop, not Redis, is usually late), and only
timeouts above a rate (`TIMEOUTS_PER_S` in one second, retries that failed too) count as
an outage. A timeout that the event loop's own stalls explain (`LoopLag.explains`: a cold
pool connecting while the loop was blocked) is retried up to `MAX_ATTEMPTS` and is no
outage. So a healthy Redis never lets a burst through unlimited.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import RATE_LIMIT_ERRORS, RATE_LIMIT_REJECTIONS
from app.middleware.responses import send_problem
from app.middleware.token_bucket import LUA_TAKE, Bucket, Decision, idle_ttl_s
from app.product_prefetch import hand_prefetched, order_read_plan, product_read_plan
from app.settings import Settings
from kit.client_address import client_address
from storage.redis_errors import LoopLag, TimeoutRate, is_timeout

log = structlog.get_logger()

EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/docs", "/static", "/openapi.json")

TIMEOUTS_PER_S = 3  # failed retries within one second that mean a slow Redis
MAX_ATTEMPTS = 4  # calls per decision while the loop's stalls explain the timeouts

BUCKET_NAMES = ("address", "key")  # bucket order in every check: address first


def is_exempt(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in EXEMPT_PREFIXES)


def key_id(authorization: str | None) -> str | None:
    """A stable bucket id for the bearer token (a hash: the raw key never reaches Redis)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def script_args(buckets: Sequence[Bucket], cost: int = 1) -> tuple[bytes, ...]:
    """LUA_TAKE's ARGV: the cost, then capacity, rate and idle TTL of each bucket."""
    values = [cost, *(v for b in buckets for v in (b.capacity, b.rate, idle_ttl_s(b)))]
    return tuple(repr(value).encode() for value in values)


class RateLimiter:
    """The buckets of one process; the Redis client comes with each call (it lives in the
    app's stores, opened by the lifespan)."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = f"{settings.redis_prefix}rl:"
        self.key_bucket = Bucket(settings.rate_limit_key_capacity, settings.rate_limit_key_per_s)
        self.address_bucket = Bucket(
            settings.rate_limit_address_capacity, settings.rate_limit_address_per_s
        )
        self.fail_open_s = settings.rate_limit_fail_open_s
        self.timeout_s = settings.redis_timeout_s
        self._skip_until = 0.0
        self._timeouts = TimeoutRate(TIMEOUTS_PER_S)
        # one script object; each call names its client (tests run several apps)
        self._take: AsyncScript | None = None
        # the script's ARGV for each set of buckets (with an address?, with a key?),
        # encoded once
        self._args = {
            (address, key): script_args([self.address_bucket] * address + [self.key_bucket] * key)
            for address in (False, True)
            for key in (False, True)
        }

    async def check(
        self,
        redis: Redis,
        address: str | None,
        key: str | None,
        lag: LoopLag,
        read: Sequence[str] = (),
    ) -> Decision | None:
        """The decision, or None when Redis could not be asked (the request passes).
        `address` None: the address is limited elsewhere (nginx), only the key here.
        `lag` (the process's loop monitor) tells a late read from a slow Redis.
        `read`: keys the same script reads once the tokens are taken (`Decision.read`),
        so a request's own Redis read costs no round trip of its own."""
        if time.monotonic() < self._skip_until:
            RATE_LIMIT_ERRORS.labels("skipped").inc()
            return None
        keys: list[str] = []
        if address is not None:
            keys.append(f"{self.prefix}a:{address}")
        if key is not None:
            keys.append(f"{self.prefix}k:{key}")
        args = self._args[(address is not None, key is not None)]
        keys += read
        try:
            result = await self._take_tokens(redis, keys, args, lag)
        except Exception as exc:  # fail open: a limiter outage must not become an API outage
            timeout = is_timeout(exc)
            RATE_LIMIT_ERRORS.labels("timeout" if timeout else "redis").inc()
            if not timeout:
                self._skip_until = time.monotonic() + self.fail_open_s
            else:
                self._timeouts.record()
                if self._timeouts.exceeded():  # not one late answer: Redis is slow
                    self._skip_until = time.monotonic() + self.fail_open_s
            log.warning("ratelimit.redis_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return None
        head = _as_bytes(result[0]) or b""
        allowed, limit, remaining, retry_ms, reset_ms, tightest = (int(v) for v in head.split())
        values = tuple(_as_bytes(v) for v in result[1:])
        return Decision(
            bool(allowed), limit, remaining, retry_ms / 1000, reset_ms / 1000, tightest, values
        )

    async def _take_tokens(
        self, redis: Redis, keys: list[str], args: Sequence[bytes], lag: LoopLag
    ) -> Any:
        # A timeout: most likely this process was busy and read the answer late. Taking
        # the tokens twice is possible (the first call may have run) and errs on the
        # strict side; letting the request through unlimited would not. One retry for a
        # timeout as such; more (up to MAX_ATTEMPTS) while the loop's stalls explain them.
        plain_retry = True
        for attempt in range(1, MAX_ATTEMPTS + 1):
            mark = lag.mark()
            try:
                # register_script: EVALSHA, and EVAL once if Redis does not know it yet
                return await self._script(redis)(keys=keys, args=args, client=redis)
            except Exception as exc:
                if not is_timeout(exc) or attempt == MAX_ATTEMPTS:
                    raise
                if lag.explains(mark, self.timeout_s):
                    RATE_LIMIT_ERRORS.labels("timeout_late").inc()
                elif plain_retry:
                    plain_retry = False
                    RATE_LIMIT_ERRORS.labels("timeout_retried").inc()
                else:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _script(self, redis: Redis) -> AsyncScript:
        if self._take is None:
            self._take = redis.register_script(LUA_TAKE)
        return self._take


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.enabled = settings.rate_limit_enabled
        self.limiter = RateLimiter(settings)
        self.address_in_proxy = settings.rate_limit_address_in_proxy
        self.cache_enabled = settings.cache_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        stores = getattr(scope["app"].state, "stores", None) if "app" in scope else None
        if stores is None:  # no lifespan yet: nothing to limit with
            await self.app(scope, receive, send)
            return
        key = key_id(_authorization(scope))
        address: str | None = None
        if not self.address_in_proxy:
            address = client_address(scope)  # the forwarded one behind a trusted proxy
        elif key is None:  # nginx limited this address; no key: nothing left to check
            await self.app(scope, receive, send)
            return
        # A cached product or order read: the script reads the cache's keys too (one round
        # trip); an order read only with a key (without one it is refused before the cache)
        plan = None
        if self.cache_enabled:
            plan = product_read_plan(scope, stores.product_cache)
            if plan is None and key is not None:
                plan = order_read_plan(scope, stores.order_cache)
        decision = await self.limiter.check(
            stores.redis, address, key, stores.loop_lag, plan.keys if plan else ()
        )
        if decision is None:
            await self.app(scope, receive, send)
            return
        limit_headers = rate_limit_headers(decision)
        if not decision.allowed:
            names = BUCKET_NAMES if address is not None else BUCKET_NAMES[1:]
            RATE_LIMIT_REJECTIONS.labels(names[decision.tightest]).inc()
            retry = str(max(1, math.ceil(decision.retry_after_s)))
            await send_problem(
                scope,
                send,
                429,
                f"rate limit exceeded, retry in {retry} s",
                {"Retry-After": retry, **limit_headers},
            )
            return
        if plan is not None and len(decision.read) == len(plan.keys):
            hand_prefetched(scope, plan.read(decision.read))
        raw_limit_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in limit_headers.items()
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # appended, not set: the app never sends these names itself
                message["headers"] = [*message.get("headers", ()), *raw_limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _authorization(scope: Scope) -> str | None:
    """The first Authorization header (as authentication reads it: the bucket is the one
    of the key that is checked), without decoding the other headers."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_s)),
    }
