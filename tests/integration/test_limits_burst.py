"""Under a burst of several times the capacity, with a healthy Redis and a busy event loop,
the limiter decides every request: none fails open (storage/redis_errors.py)."""

from __future__ import annotations

import asyncio
import time

from app.settings import Settings
from tests.integration.test_limits import client_with, counter

CAPACITY = 20


async def test_a_burst_on_a_busy_process_never_fails_open(settings: Settings) -> None:
    fail_open_before = sum(
        counter("polyshop_ratelimit_errors_total", reason=r)
        for r in ("redis", "timeout", "skipped")
    )
    overrides = {
        "rate_limit_address_capacity": CAPACITY,
        "rate_limit_address_per_s": 0.01,
        "rate_limit_key_capacity": 1000,
    }
    async with client_with(settings, **overrides) as c:
        assert (await c.get("/no/such")).status_code == 404  # the script is loaded
        # a warm connection pool (as on a replica under load), filled from another
        # address's bucket: this test is about late reads, not about 100 cold connects
        warm = {"X-Forwarded-For": "198.51.100.9"}
        await asyncio.gather(*(c.get("/no/such", headers=warm) for _ in range(CAPACITY * 5)))

        async def hog() -> None:
            # the event loop is busy for longer than the Redis timeout (0.5 s) while the
            # burst's checks wait for their answers: those arrive on time, read late
            await asyncio.sleep(0.01)
            time.sleep(0.7)  # noqa: ASYNC251  (blocking on purpose: a busy loop)

        burst = [c.get("/no/such") for _ in range(CAPACITY * 5)]
        results = await asyncio.gather(hog(), *burst)
    codes = [r.status_code for r in results[1:] if r is not None]
    assert codes.count(404) == CAPACITY - 1  # the warm-up request took one token
    assert codes.count(429) == len(codes) - (CAPACITY - 1)
    fail_open_after = sum(
        counter("polyshop_ratelimit_errors_total", reason=r)
        for r in ("redis", "timeout", "skipped")
    )
    assert fail_open_after == fail_open_before
