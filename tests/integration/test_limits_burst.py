"""Under a burst of several times the capacity, with a healthy Redis and a busy event loop,
the limiter decides every request: none fails open (storage/redis_errors.py). With a warm
pool the answers are read late (the retry covers that); with a cold pool the burst must
connect while the loop is blocked, and only measuring the timeout without the loop's
stalls (`LoopLag`) tells that from a slow Redis."""

from __future__ import annotations

import asyncio
import time

import httpx

from app.settings import Settings
from tests.integration.test_limits import client_with, counter

CAPACITY = 20
FAIL_OPEN = ("redis", "timeout", "skipped")


def fail_open_count() -> float:
    return sum(counter("polyshop_ratelimit_errors_total", reason=r) for r in FAIL_OPEN)


async def burst_on_a_blocked_loop(c: httpx.AsyncClient) -> list[int]:
    """CAPACITY x 5 requests from one address while the event loop is blocked for longer
    than the Redis timeout (0.5 s); their status codes."""

    async def hog() -> None:
        await asyncio.sleep(0.01)  # the burst's checks are waiting for Redis by now
        time.sleep(0.7)  # noqa: ASYNC251  (blocking on purpose: a busy loop)

    results = await asyncio.gather(hog(), *(c.get("/no/such") for _ in range(CAPACITY * 5)))
    return [r.status_code for r in results[1:] if r is not None]


OVERRIDES = {
    "rate_limit_address_capacity": CAPACITY,
    "rate_limit_address_per_s": 0.01,
    "rate_limit_key_capacity": 1000,
}


def assert_every_request_decided(codes: list[int]) -> None:
    assert len(codes) == CAPACITY * 5
    assert codes.count(404) == CAPACITY - 1  # the warm-up request took one token
    assert codes.count(429) == len(codes) - (CAPACITY - 1)


async def test_a_burst_on_a_busy_process_never_fails_open(settings: Settings) -> None:
    before = fail_open_count()
    async with client_with(settings, **OVERRIDES) as c:
        assert (await c.get("/no/such")).status_code == 404  # the script is loaded
        # a warm connection pool (as on a replica under load), filled from another
        # address's bucket: this test is about late reads, the next one about connects
        warm = {"X-Forwarded-For": "198.51.100.9"}
        await asyncio.gather(*(c.get("/no/such", headers=warm) for _ in range(CAPACITY * 5)))
        codes = await burst_on_a_blocked_loop(c)
    assert_every_request_decided(codes)
    assert fail_open_count() == before


async def test_a_burst_on_a_cold_pool_and_a_blocked_loop_never_fails_open(
    settings: Settings,
) -> None:
    before = fail_open_count()
    late_before = counter("polyshop_ratelimit_errors_total", reason="timeout_late")
    async with client_with(settings, **OVERRIDES) as c:
        assert (await c.get("/no/such")).status_code == 404  # one connection, the script
        codes = await burst_on_a_blocked_loop(c)  # ~99 connections to open
    assert_every_request_decided(codes)
    assert fail_open_count() == before
    # the loop's stall made calls time out, and they were retried as such
    assert counter("polyshop_ratelimit_errors_total", reason="timeout_late") > late_before
