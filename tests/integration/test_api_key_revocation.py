"""API keys are looked up once per replica and kept in memory; a revocation reaches
every replica through Postgres NOTIFY, long before the cache's own bound."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.commands.keys import _revoke
from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from storage import api_keys
from tests.support.auth import bearer

TTL_S = 60.0  # far beyond the wait below: only the notification can explain a refusal


@contextlib.asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(settings.model_copy(update={"api_key_cache_ttl_s": TTL_S}))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as c:
            yield c, app


async def _listening(app: FastAPI) -> None:
    cache: api_keys.ApiKeyCache = app.state.stores.api_keys
    for _ in range(200):
        if cache.listening:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the key-revocation listener never connected")


async def test_a_key_is_looked_up_once_then_served_from_memory(
    settings: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await bearer(stores, "admin")
    lookups: list[bytes] = []
    real = api_keys.lookup_hash

    async def counting(conn: Any, key_hash: bytes) -> api_keys.ApiKey | None:
        lookups.append(key_hash)
        return await real(conn, key_hash)

    monkeypatch.setattr(api_keys, "lookup_hash", counting)
    async with replica(settings) as (client, app):
        await _listening(app)
        for _ in range(5):
            assert (await client.get("/orders", headers=headers)).status_code == 200
    assert len(lookups) == 1


async def test_a_revoked_key_is_refused_by_every_replica_at_once(
    settings: Settings, stores: Stores
) -> None:
    headers = await bearer(stores, "admin")
    prefix = headers["Authorization"].removeprefix("Bearer ")[:10]
    async with replica(settings) as (a, app_a), replica(settings) as (b, app_b):
        await _listening(app_a)
        await _listening(app_b)
        for client in (a, b):  # both have it cached now
            assert (await client.get("/orders", headers=headers)).status_code == 200
        assert await _revoke(settings, prefix) == 1
        revoked_at = time.monotonic()
        refused: dict[str, float] = {}
        while len(refused) < 2 and time.monotonic() - revoked_at < 5:
            for name, client in (("a", a), ("b", b)):
                if name not in refused:
                    status = (await client.get("/orders", headers=headers)).status_code
                    if status == 401:
                        refused[name] = time.monotonic() - revoked_at
            await asyncio.sleep(0.01)
    print(f"revocation refused on replicas after {refused} s (cache bound {TTL_S} s)")
    assert set(refused) == {"a", "b"}, refused
