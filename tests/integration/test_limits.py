"""Rate limiting (token buckets in the real Redis) and body size limits, through the app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from tests.support.auth import bearer

TIGHT = {
    "rate_limit_address_capacity": 3,
    "rate_limit_address_per_s": 0.01,
    "rate_limit_key_capacity": 2,
    "rate_limit_key_per_s": 0.01,
}


@asynccontextmanager
async def client_with(settings: Settings, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=overrides))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://polyshop.test") as c:
            yield c


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_address_over_its_budget_gets_429_problem_json(settings: Settings) -> None:
    before = counter("polyshop_ratelimit_rejections_total", bucket="address")
    overrides = {**TIGHT, "rate_limit_key_capacity": 100}
    async with client_with(settings, **overrides) as c:
        answers = [await c.get("/no/such/path") for _ in range(4)]
        exempt = await c.get("/healthz")
    assert [r.status_code for r in answers] == [404, 404, 404, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["ratelimit-limit"] == "3"
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    retry_after = int(refused.headers["retry-after"])
    # one token at 0.01 per second: ~100 s (the Lua script's math, as token_bucket.take)
    assert 90 <= retry_after <= 100
    assert int(refused.headers["ratelimit-reset"]) >= 290  # 3 tokens to refill
    assert exempt.status_code == 200
    assert "ratelimit-limit" not in exempt.headers
    assert counter("polyshop_ratelimit_rejections_total", bucket="address") == before + 1


async def test_each_api_key_has_its_own_bucket(settings: Settings, stores: Stores) -> None:
    overrides = {**TIGHT, "rate_limit_address_capacity": 100}
    alice = await bearer(stores, "admin")
    bob = await bearer(stores, "admin")
    before = counter("polyshop_ratelimit_rejections_total", bucket="key")
    async with client_with(settings, **overrides) as c:
        alice_codes = [(await c.get("/no/such", headers=alice)).status_code for _ in range(3)]
        bob_code = (await c.get("/no/such", headers=bob)).status_code
    assert alice_codes == [404, 404, 429]
    assert bob_code == 404
    assert counter("polyshop_ratelimit_rejections_total", bucket="key") == before + 1
    # the buckets are named by a hash: no key ever reaches Redis
    keys = [k.decode() async for k in stores.redis.scan_iter(match=f"{settings.redis_prefix}rl:*")]
    assert any(":k:" in k for k in keys)
    secrets = [h["Authorization"].split(" ", 1)[1] for h in (alice, bob)]
    assert not [k for k in keys for s in secrets if s in k]


async def test_forwarded_for_counts_only_from_a_trusted_proxy(settings: Settings) -> None:
    # the ASGI test client connects from 127.0.0.1, trusted by default (nginx)
    async with client_with(settings, **TIGHT) as c:
        per_client = [
            (await c.get("/no/such", headers={"X-Forwarded-For": f"198.51.100.{i % 2}"}))
            for i in range(6)
        ]
    assert [r.status_code for r in per_client] == [404] * 6  # two clients, three each

    async with client_with(settings, **TIGHT, trusted_proxies=[]) as c:
        spoofed = [
            (await c.get("/no/such", headers={"X-Forwarded-For": f"203.0.113.{i}"}))
            for i in range(4)
        ]
    assert [r.status_code for r in spoofed] == [404, 404, 404, 429]


async def test_redis_down_fails_open_and_is_counted(settings: Settings) -> None:
    before = counter("polyshop_ratelimit_errors_total", reason="redis")
    async with client_with(settings, **TIGHT, redis_url="redis://127.0.0.1:1/0") as c:
        codes = [(await c.get("/no/such")).status_code for _ in range(5)]
    assert codes == [404] * 5
    assert counter("polyshop_ratelimit_errors_total", reason="redis") == before + 1


async def test_disabled_rate_limit_lets_everything_through(settings: Settings) -> None:
    async with client_with(settings, **TIGHT, rate_limit_enabled=False) as c:
        answers = [await c.get("/no/such") for _ in range(5)]
    assert [r.status_code for r in answers] == [404] * 5
    assert "ratelimit-limit" not in answers[0].headers


async def test_a_json_body_over_the_limit_is_413(settings: Settings, stores: Stores) -> None:
    admin = await bearer(stores, "admin")
    big = json.dumps({"sku": "x", "name": "n", "price": "1.00", "description": "d" * 2_000_000})
    async with client_with(settings) as c:
        declared = await c.post("/products", content=big, headers=admin)

        async def chunks() -> AsyncIterator[bytes]:
            data = big.encode()
            for i in range(0, len(data), 64 * 1024):
                yield data[i : i + 64 * 1024]

        streamed = await c.post(
            "/products",
            content=chunks(),
            headers={**admin, "Content-Type": "application/json"},
        )
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 413
    assert "content-length" not in streamed.request.headers
