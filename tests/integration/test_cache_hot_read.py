"""The hot product read (issue 19) against real Postgres and Redis: with the limiter on,
a cached GET /products/{id} reads the cache inside the limiter's script (one Redis round
trip, no MGET of its own), and the thin route answers as the documented one did."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from tests.support.auth import bearer

# the generation is re-read from Postgres (its own way, not prefetched) at most every
# this long: longer than any test here, also on a loaded machine
STEADY = {"cache_generation_check_s": 600.0}


@contextlib.asynccontextmanager
async def api(settings: Settings, **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(settings.model_copy(update=overrides))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hot") as c:
            yield c, app


def count_mgets(app: Any) -> list[int]:
    """Counts the cache's own MGETs (the real call still runs)."""
    cache = app.state.stores.product_cache
    calls = [0]
    real = cache.redis.mget

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await real(*args, **kwargs)

    cache.redis.mget = counted
    return calls


async def warmed(c: httpx.AsyncClient, app: Any, product_id: int) -> list[int]:
    """Reads the product twice (the cache filled, its breaker made), then counts MGETs."""
    for _ in range(2):
        assert (await c.get(f"/products/{product_id}")).status_code == 200
    return count_mgets(app)


async def new_product(c: httpx.AsyncClient, admin: dict[str, str]) -> int:
    response = await c.post(
        "/products",
        json={"sku": "HOT-1", "name": "Lamp", "price": "10.00", "category": "Lighting"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    product_id: int = response.json()["id"]
    return product_id


async def test_a_cached_read_with_the_limiter_on_makes_no_mget_of_its_own(
    settings: Settings, stores: Stores
) -> None:
    admin = await bearer(stores, "admin")
    async with api(settings) as (c, _):
        product_id = await new_product(c, admin)
    for limiter, mgets_expected in ((True, 0), (False, 3)):
        async with api(settings, rate_limit_enabled=limiter, **STEADY) as (c, app):
            mgets = await warmed(c, app, product_id)
            answers = [await c.get(f"/products/{product_id}") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert len({(a.content, a.headers["etag"]) for a in answers}) == 1
        assert mgets[0] == mgets_expected, limiter  # limiter off: the cache's own MGET
        if limiter:
            assert all("ratelimit-remaining" in a.headers for a in answers)


async def test_a_write_is_read_at_once_through_the_prefetched_read(
    settings: Settings, stores: Stores
) -> None:
    admin = await bearer(stores, "admin")
    async with api(settings, rate_limit_enabled=True, **STEADY) as (c, app):
        product_id = await new_product(c, admin)
        mgets = await warmed(c, app, product_id)
        for name in ("Desk lamp", "Floor lamp", "Reading lamp"):
            patched = await c.patch(f"/products/{product_id}", json={"name": name}, headers=admin)
            assert patched.status_code == 200, patched.text
            read = await c.get(f"/products/{product_id}")
            assert read.json()["name"] == name
            assert read.headers["etag"] == patched.headers["etag"]
            again = await c.get(f"/products/{product_id}")  # a hit, prefetched
            assert again.content == read.content
        assert mgets[0] == 0


async def test_the_thin_route_answers_as_the_documented_one(
    settings: Settings, stores: Stores
) -> None:
    admin = await bearer(stores, "admin")
    async with api(settings) as (c, _):
        product_id = await new_product(c, admin)
        ok = await c.get(f"/products/{product_id}")
        assert ok.headers["content-type"] == "application/json"
        assert ok.headers["content-length"] == str(len(ok.content))
        etag = ok.headers["etag"]
        same = await c.get(f"/products/{product_id}", headers={"If-None-Match": f'"0", {etag}'})
        assert (same.status_code, same.headers["etag"], same.content) == (304, etag, b"")
        other = await c.get(f"/products/{product_id}", headers={"If-None-Match": '"0"'})
        assert other.status_code == 200
        padded = await c.get(f"/products/00{product_id}")  # FastAPI's route reads it as before
        assert (padded.status_code, padded.content) == (200, ok.content)
        for bad in ("0", "abc", str(2**63)):
            refused = await c.get(f"/products/{bad}")
            assert refused.status_code == 422, bad
            assert "product_id" in refused.json()["detail"]
        missing = await c.get(f"/products/{2**62}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert (await c.head(f"/products/{product_id}")).status_code == 405
        assert (await c.delete(f"/products/{product_id}", headers=admin)).status_code == 204
        assert (await c.get(f"/products/{product_id}")).status_code == 404
