"""The per-address limit handed to nginx (`rate_limit_address_in_proxy`, issue 19): the
app then limits API keys only, with the same 429 + Retry-After; nginx, configured by
devstack from the same settings, refuses an address over its burst with the app's
problem+json and Retry-After, and never limits the exempt paths."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest

import devstack
from app.settings import Settings
from app.stores import Stores
from devstack import _config, _ready
from tests.integration.test_limits import TIGHT, client_with, counter
from tests.support.auth import bearer


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _has_nginx() -> bool:
    try:
        _config.nginx_binary()
    except devstack.InstallError:
        return False
    return True


@pytest.mark.skipif(not _has_nginx(), reason="nginx is not installed")
def test_nginx_refuses_an_address_over_its_burst_with_429_and_retry_after(
    tmp_path: Path,
) -> None:
    layout = devstack.Layout(tmp_path, port_offset=0)
    layout.logs.mkdir(parents=True)
    layout.nginx_run.mkdir(parents=True)
    listen, upstream = _free_port(), _free_port()  # nothing listens upstream: 502
    env = {
        "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "true",
        "POLYSHOP_RATE_LIMIT_ADDRESS_PER_S": "1",
        "POLYSHOP_RATE_LIMIT_ADDRESS_CAPACITY": "2",
    }
    conf = tmp_path / "nginx.conf"
    conf.write_text(_config.render_nginx_conf(layout, [upstream], listen, env))
    nginx = subprocess.Popen(
        [str(_config.nginx_binary()), "-p", str(layout.nginx_run), "-e",
         str(layout.logs / "e.log"), "-c", str(conf), "-g", "daemon off;"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{listen}"
    try:
        _ready.wait_http_ok(f"{base}/nginx-health", 10)
        with httpx.Client(base_url=base, timeout=5) as client:
            answers = [client.get("/products/1") for _ in range(6)]
            exempt = [client.get("/healthz").status_code for _ in range(6)]
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    codes = [r.status_code for r in answers]
    # one at the rate plus a burst of 2 passed on (to a dead upstream: 502), then refused
    assert codes.count(429) >= 3 and codes[0] == 502, codes
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["status"] == 429 and problem["title"] == "Too Many Requests"
    assert 429 not in exempt  # /healthz is never limited
