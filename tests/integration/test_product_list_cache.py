"""The product list pages' cache (app/product_list_cache.py) on real Postgres and Redis:
a repeated page is served from Redis, every product write (a PATCH, an order's stock)
is listed at once by every replica, a fill that read before a bump is never stored,
the relay's bump covers a request whose own bump failed, a restore's flush empties it."""

from __future__ import annotations

import asyncio
import collections
import types
import uuid
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.cache_consumer import cache_consumer
from app.commands.cache import flush_cache
from app.product_list_cache import KIND, NAMESPACE
from app.settings import Settings
from app.stores import Stores
from storage import outbox, products
from storage.answer_cache import AnswerCache
from tests.integration.test_cache import admin, metric, new_product, replica  # noqa: F401
from tests.support.auth import bearer
from web import backend as web_backend

PAGE = {"limit": "20", "category": "Lighting"}
BUMPS = "polyshop_product_list_cache_generation_bumps_total"


@pytest.fixture
def list_reads(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Postgres reads of a list page behind the cache (a spy on storage.products.list_page,
    which still reads the real database)."""
    reads: collections.Counter[str] = collections.Counter()
    real = products.list_page

    async def counting(conn: Any, **kwargs: Any) -> list[products.Product]:
        reads["pages"] += 1
        return await real(conn, **kwargs)

    monkeypatch.setattr(products, "list_page", counting)
    return reads


async def listed(client: httpx.AsyncClient, **params: str) -> dict[int, dict[str, Any]]:
    response = await client.get("/products", params={**PAGE, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return {item["id"]: item for item in response.json()["items"]}


async def drain_cache_events(stores: Stores) -> int:
    """What the relay does for the "cache" consumer: claim, apply, ack until none is due."""
    consumer, total = cache_consumer(stores), 0
    while True:
        async with stores.pg.connection() as conn, conn.transaction():
            events = await outbox.claim(conn, consumer.name, 200)
            if not events:
                return total
            await consumer.apply(events)
            await outbox.ack(conn, consumer.name, [e.id for e in events])
            total += len(events)


async def test_a_repeated_list_page_is_read_from_redis_once(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: dict[str, str],  # noqa: F811
    list_reads: collections.Counter[str],
) -> None:
    pid = await new_product(client, admin)
    hits = metric("polyshop_product_list_cache_requests_total", {"result": "hit"})
    first = await client.get("/products", params=PAGE)
    # a hit is the thin route's (app/routes/product_list_read.py): it never reaches the
    # documented route, which would re-read the generation (and here fail)
    cache = stores.product_cache

    async def not_reached(*, force: bool = False) -> str:
        raise AssertionError("the documented route answered a hit")

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(cache, "refresh_generation", not_reached)
        second = await client.get("/products", params=PAGE)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content and pid in {i["id"] for i in first.json()["items"]}
    assert first.headers["content-type"] == second.headers["content-type"] == "application/json"
    assert first.headers["content-length"] == second.headers["content-length"]
    assert list_reads["pages"] == 1
    assert metric("polyshop_product_list_cache_requests_total", {"result": "hit"}) == hits + 1
    # another page, another entry; the cursor the page gave leads to the next one
    await client.get("/products", params={**PAGE, "limit": "1"})
    assert list_reads["pages"] == 2
    # a bad filter is still refused before any cache work, naming the field
    bad = await client.get("/products", params={"min_price": "cheap"})
    assert bad.status_code == 422 and "min_price" in bad.text


async def test_a_write_on_one_replica_is_listed_by_the_other_at_once(
    settings: Settings,
    admin: dict[str, str],  # noqa: F811
) -> None:
    async with replica(settings) as (a, _), replica(settings) as (b, _):
        pid = await new_product(a, admin)
        acknowledged = (await listed(b))[pid]["version"]
        violations: list[tuple[int, int]] = []
        writing = True

        async def writer(client: httpx.AsyncClient, n: int) -> None:
            nonlocal acknowledged
            for i in range(n):
                response = await client.patch(f"/products/{pid}", json={"stock": i}, headers=admin)
                assert response.status_code == 200, response.text
                acknowledged = max(acknowledged, response.json()["version"])

        async def reader(client: httpx.AsyncClient) -> int:
            reads = 0
            while writing:
                floor = acknowledged
                seen = (await listed(client))[pid]["version"]
                if seen < floor:
                    violations.append((seen, floor))
                reads += 1
            return reads

        hits = metric("polyshop_product_list_cache_requests_total", {"result": "hit"})
        readers = [asyncio.create_task(reader(c)) for c in (a, b, a, b)]
        await asyncio.gather(writer(a, 10), writer(b, 10))
        writing = False
        reads = await asyncio.gather(*readers)
        assert violations == [] and sum(reads) > 0
        last = (await listed(a))[pid]
        assert last["version"] == acknowledged == (await listed(b))[pid]["version"]
        # between the writes the readers were served from Redis
        assert metric("polyshop_product_list_cache_requests_total", {"result": "hit"}) > hits


async def test_an_order_moves_the_listed_stock(
    client: httpx.AsyncClient,
    admin: dict[str, str],  # noqa: F811
    stores: Stores,
) -> None:
    pid = await new_product(client, admin)
    assert (await listed(client))[pid]["stock"] == 0
    patched = await client.patch(f"/products/{pid}", json={"stock": 5}, headers=admin)
    assert patched.status_code == 200
    assert (await listed(client))[pid]["stock"] == 5
    shopper = await bearer(stores, "customer")
    order = await client.post(
        "/orders",
        json={"items": [{"product_id": pid, "quantity": 2}]},
        headers={**shopper, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert order.status_code == 201, order.text
    assert (await listed(client))[pid]["stock"] == 3


async def test_a_fill_that_read_before_a_bump_is_never_stored(stores: Stores) -> None:
    cache = stores.product_list_cache
    assert isinstance(cache, AnswerCache) and cache.namespace == NAMESPACE
    await cache.bump()
    key = cache.entry_key(KIND, "race")

    async def slow_load() -> bytes:
        await cache.bump()  # a product write committed while this page was being read
        return b"old page"

    assert await cache.get_or_load(KIND, "race", slow_load) == b"old page"
    assert await stores.redis.get(key) is None  # refused: it may predate the write

    async def load() -> bytes:
        return b"new page"

    assert await cache.get_or_load(KIND, "race", load) == b"new page"
    assert await cache.get_or_load(KIND, "race", slow_load) == b"new page"  # a hit now


async def test_the_relay_bumps_for_a_request_whose_own_bump_failed(
    settings: Settings,
    stores: Stores,
    admin: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with replica(settings) as (a, app_a), replica(settings) as (b, _):
        pid = await new_product(a, admin)
        await drain_cache_events(stores)
        assert (await listed(b))[pid]["stock"] == 0  # cached now

        async def refused() -> str:
            raise RedisConnectionError("refused")  # Redis refused the request's bump

        failed = metric(BUMPS, {"source": "failed"})
        monkeypatch.setattr(app_a.state.stores.product_list_cache, "bump", refused)
        response = await a.patch(f"/products/{pid}", json={"stock": 7}, headers=admin)
        assert response.status_code == 200
        assert metric(BUMPS, {"source": "failed"}) == failed + 1
        assert (await listed(b))[pid]["stock"] == 0  # what the failed bump leaves: stale...
        outboxed = metric(BUMPS, {"source": "outbox"})
        assert await drain_cache_events(stores) >= 1
        assert (await listed(b))[pid]["stock"] == 7  # ...until the relay's bump
        assert metric(BUMPS, {"source": "outbox"}) == outboxed + 1


async def test_a_restore_flush_forgets_every_list_page(
    client: httpx.AsyncClient,
    settings: Settings,
    stores: Stores,
    admin: dict[str, str],  # noqa: F811
) -> None:
    await new_product(client, admin)
    await listed(client)
    pattern = stores.product_list_cache.pattern()
    assert [k async for k in stores.redis.scan_iter(match=pattern)]
    await flush_cache(settings)
    assert [k async for k in stores.redis.scan_iter(match=pattern)] == []


async def test_the_storefronts_bump_is_counted_like_a_requests(stores: Stores) -> None:
    """Every writer's bump after its commit goes through the cache's `try_bump`, which the
    wiring counts: the storefront's (web/backend.py, which cannot import app/) too."""
    bumps = metric(BUMPS, {"source": "request"})
    generation = await stores.redis.get(stores.product_list_cache.generation_key)
    state = types.SimpleNamespace(stores=stores)
    page = types.SimpleNamespace(app=types.SimpleNamespace(state=state))  # what it reads
    await web_backend.invalidate(page, [])  # type: ignore[arg-type]
    assert metric(BUMPS, {"source": "request"}) == bumps + 1
    assert await stores.redis.get(stores.product_list_cache.generation_key) != generation
