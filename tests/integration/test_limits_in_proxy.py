"""The per-address limit handed to nginx (`rate_limit_address_in_proxy`, issue 19): the
app then limits API keys only, with the same 429 + Retry-After; nginx, configured by
devstack from the same settings, refuses an address over its burst with the app's
problem+json and Retry-After, and never limits the exempt paths."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from app.stores import Stores
from tests.integration.test_limits import TIGHT, client_with, counter
from tests.support.auth import bearer
from tests.support.nginx import free_port, has_nginx, nginx_in_front


async def test_with_the_address_limit_in_nginx_the_app_limits_keys_only(
    settings: Settings, stores: Stores
) -> None:
    alice = await bearer(stores, "admin")
    before = counter("polyshop_ratelimit_rejections_total", bucket="key")
    async with client_with(settings, **TIGHT, rate_limit_address_in_proxy=True) as c:
        anonymous = [(await c.get("/no/such/path")).status_code for _ in range(6)]
        keyed = [await c.get("/no/such/path", headers=alice) for _ in range(3)]
    assert anonymous == [404] * 6  # over the address capacity (3): nginx's job now
    assert [r.status_code for r in keyed] == [404, 404, 429]
    refused = keyed[2]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 90 <= int(refused.headers["retry-after"]) <= 100  # 1 token at 0.01/s
    assert refused.headers["ratelimit-limit"] == "2"  # the key bucket's capacity
    assert counter("polyshop_ratelimit_rejections_total", bucket="key") == before + 1
    keys = [k.decode() async for k in stores.redis.scan_iter(match=f"{settings.redis_prefix}rl:*")]
    assert keys and all(":k:" in k for k in keys)  # no address bucket in Redis


@pytest.mark.skipif(not has_nginx(), reason="nginx is not installed")
def test_nginx_refuses_an_address_over_its_burst_with_429_and_retry_after(
    tmp_path: Path,
) -> None:
    env = {
        "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "true",
        "POLYSHOP_RATE_LIMIT_ADDRESS_PER_S": "1",
        "POLYSHOP_RATE_LIMIT_ADDRESS_CAPACITY": "2",
    }
    # nothing listens upstream: 502
    with (
        nginx_in_front(tmp_path, [free_port()], env) as base,
        httpx.Client(base_url=base, timeout=5) as client,
    ):
        answers = [client.get("/products/1") for _ in range(6)]
        exempt = [client.get("/healthz").status_code for _ in range(6)]
    codes = [r.status_code for r in answers]
    # one at the rate plus a burst of 2 passed on (to a dead upstream: 502), then refused
    assert codes.count(429) >= 3 and codes[0] == 502, codes
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["status"] == 429 and problem["title"] == "Too Many Requests"
    assert 429 not in exempt  # /healthz is never limited
