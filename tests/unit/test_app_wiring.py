"""The app is assembled by the same factory in tests as in production: `create_app`
takes the stores factory, so a unit test can hand it fakes and no service is needed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from storage.api_keys import ApiKeyCache


def _settings(tmp_path: Path) -> Settings:
    # nothing listens at port 1: the key-revocation listener just retries
    return Settings(
        duckdb_path=tmp_path / "copy.duckdb",
        database_url="postgresql://x@127.0.0.1:1/x",
        gc_freeze_at_startup=False,
    )


async def test_create_app_opens_and_closes_the_stores_it_is_given(tmp_path: Path) -> None:
    events: list[str] = []
    settings = _settings(tmp_path)
    fake = cast(
        Stores,
        SimpleNamespace(
            settings=settings,
            api_keys=ApiKeyCache(ttl_s=10),
            analytics=SimpleNamespace(data_age_s=lambda: 0.0),
        ),
    )

    @contextlib.asynccontextmanager
    async def fake_stores(settings: Settings) -> AsyncIterator[Stores]:
        events.append("opened")
        yield fake
        events.append("closed")

    app = create_app(settings, stores_factory=fake_stores)
    async with LifespanManager(app):
        assert app.state.stores is fake
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/healthz")).text == "ok\n"
        assert events == ["opened"]
    assert events == ["opened", "closed"]


def test_every_feature_router_is_mounted(tmp_path: Path) -> None:
    paths = set(create_app(_settings(tmp_path)).openapi()["paths"])
    for path in (
        "/products/{product_id}",
        "/products/{product_id}/images",
        "/orders",
        "/search/products",
        "/analytics/query",
        "/etl/runs",
    ):
        assert path in paths
