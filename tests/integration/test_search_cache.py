"""The search answer cache (search/cache.py) on real Redis and both real engines: hits do
not reach the engine, the sync's generation bump, a reindex and a repair invalidate, the
TTL bounds an entry, Redis down still answers from the engine, one cache for the API and
the storefront."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from app.commands import search as search_commands
from app.metrics import SEARCH_CACHE_FILLS, SEARCH_CACHE_REQUESTS
from app.settings import Settings
from app.stores import Stores
from search.consumer import SearchIndexConsumer
from search.index_admin import alias_name
from search.reconcile import reconcile
from tests.integration.test_idempotency import replica as _client
from tests.support.search import (
    ON_EACH_ENGINE,
    consumer_for,
    delete_product,
    drain,
    insert_product,
    proxy_to,
    update_product,
)

pytestmark = ON_EACH_ENGINE


async def engine_queries(stores: Stores) -> int:
    """Searches the engine has run on the test's index (its own counter, every shard)."""
    alias = alias_name(stores.settings.search_index_prefix)
    stats = await stores.search.client.indices.stats(index=alias, metric="search")
    body = stats.body if hasattr(stats, "body") else stats
    return int(body["_all"]["total"]["search"]["query_total"])


def counted(kind: str, result: str) -> float:
    return float(SEARCH_CACHE_REQUESTS.labels(kind, result)._value.get())


def fills(outcome: str) -> float:
    return float(SEARCH_CACHE_FILLS.labels(outcome)._value.get())


def _headers(response: httpx.Response) -> dict[str, str]:
    """Every header but the request's own id."""
    return {k: v for k, v in response.headers.items() if k != "x-request-id"}


async def _names(client: httpx.AsyncClient, q: str) -> list[str]:
    response = await client.get("/search/products", params={"q": q})
    assert response.status_code == 200, response.text
    return [h["name"] for h in response.json()["hits"]]


async def _catalog(stores: Stores) -> dict[str, int]:
    async with stores.pg.connection() as conn:
        ids = {
            "lamp": await insert_product(conn, name="Brass Floor Lamp", stock=3),
            "chair": await insert_product(conn, name="Oak Chair", brand="Bolt"),
            "desk": await insert_product(conn, name="Oak Desk", brand="Acme"),
        }
    await drain(stores, consumer_for(stores))
    return ids


async def test_a_repeated_search_is_served_from_the_cache(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    await _catalog(stores)
    params = {"q": "oak", "brand": ["Bolt", "Acme"], "sort": "price_asc", "limit": "1"}
    before = await engine_queries(stores)
    hits, misses = counted("products", "hit"), counted("products", "miss")
    miss = await client.get("/search/products", params=params)
    asked = await engine_queries(stores) - before
    assert miss.status_code == 200 and asked >= 1
    assert miss.json()["next_cursor"]  # a cursor page: the next one is cached by cursor

    # the same request, brands in another order: the same entry, the engine not asked
    hit = await client.get("/search/products", params={**params, "brand": ["Acme", "Bolt"]})
    assert await engine_queries(stores) - before == asked
    assert hit.content == miss.content
    assert _headers(hit) == _headers(miss)
    assert counted("products", "miss") == misses + 1
    assert counted("products", "hit") == hits + 1

    # the next page is another request: asked once, then cached too
    page2 = {**params, "cursor": miss.json()["next_cursor"]}
    second = await client.get("/search/products", params=page2)
    assert second.status_code == 200 and second.json()["hits"] != miss.json()["hits"]
    again = await client.get("/search/products", params=page2)
    assert again.content == second.content
    assert await engine_queries(stores) - before == 2 * asked

    suggest = await client.get("/search/suggest", params={"q": "oa"})
    asked_all = await engine_queries(stores)
    suggest_hit = await client.get("/search/suggest", params={"q": " oa"})  # stripped alike
    assert suggest_hit.content == suggest.content
    assert await engine_queries(stores) == asked_all
    assert {s["name"] for s in suggest.json()["suggestions"]} == {"Oak Chair", "Oak Desk"}


async def test_a_hit_is_answered_by_the_thin_route_and_a_bump_hands_it_on(
    app: FastAPI, client: httpx.AsyncClient, stores: Stores
) -> None:
    await _catalog(stores)
    served: Stores = app.state.stores  # the app's own stores (the memo is per process)
    search, suggest = {"q": "oak", "limit": "2"}, {"q": "oa"}
    miss = await client.get("/search/products", params=search)
    suggest_miss = await client.get("/search/suggest", params=suggest)
    assert miss.status_code == suggest_miss.status_code == 200
    asked = await engine_queries(stores)
    hits = counted("products", "hit"), counted("suggest", "hit")

    def not_reached(*args: object, **kwargs: object) -> str:
        raise AssertionError("the documented route answered a hit")

    # a hit (app/routes/search_read.py) builds no key: the documented route would
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(served.product_search, "search_key", not_reached)
        patched.setattr(served.product_search, "suggest_key", not_reached)
        hit = await client.get("/search/products", params=search)
        suggest_hit = await client.get("/search/suggest", params=suggest)
    assert (hit.content, _headers(hit)) == (miss.content, _headers(miss))
    assert (suggest_hit.content, _headers(suggest_hit)) == (
        suggest_miss.content,
        _headers(suggest_miss),
    )
    assert (counted("products", "hit"), counted("suggest", "hit")) == (hits[0] + 1, hits[1] + 1)
    assert await engine_queries(stores) == asked

    # the same request spelled another way: the documented route first, the same entry
    respelled = await client.get("/search/products", params={"limit": "2", "q": "oak"})
    assert respelled.content == miss.content and await engine_queries(stores) == asked
    # input the documented route refuses is never remembered: refused every time
    for _ in range(2):
        refused = await client.get("/search/products", params={"q": "x" * 201})
        assert refused.status_code == 422 and "q" in refused.text
        blank = await client.get("/search/suggest", params={"q": " "})
        assert blank.status_code == 422 and "q" in blank.text

    # a bump: the thin route misses and hands on; the documented route asks the engine
    await stores.search_cache.bump()
    misses = counted("products", "miss")
    again = await client.get("/search/products", params=search)
    assert again.content == miss.content
    assert counted("products", "miss") == misses + 1
    assert await engine_queries(stores) > asked


async def test_bad_input_is_still_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    for params, field in (
        ({"q": "oak", "cursor": "garbage"}, "cursor"),
        ({"min_price": "5", "max_price": "1"}, "min_price"),
        ({"limit": "0"}, "limit"),
    ):
        response = await client.get("/search/products", params=params)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert field in response.text


async def test_the_storefront_search_shares_the_apis_cache(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    await _catalog(stores)
    # the storefront's page asks for 12 hits; the same search through the API is one entry
    api = await client.get("/search/products", params={"q": "oak", "limit": "12"})
    assert api.status_code == 200
    before = await engine_queries(stores)
    page = await client.get("/shop", params={"q": "oak"})
    assert page.status_code == 200 and "Oak Chair" in page.text
    fragment = await client.get("/shop/suggest", params={"q": "bra"})
    assert "Brass Floor Lamp" in fragment.text
    asked = await engine_queries(stores) - before  # the suggestion only
    await client.get("/shop/suggest", params={"q": "bra"})
    await client.get("/search/suggest", params={"q": "bra", "limit": "8"})
    assert await engine_queries(stores) - before == asked


async def test_an_edit_shows_after_the_sync_and_not_before_the_bump(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    ids = await _catalog(stores)
    assert await _names(client, "lamp") == ["Brass Floor Lamp"]

    # written to the index and visible there, but no bump: the cached answer still
    # stands (so it is the bump that invalidates, not luck)
    async with stores.pg.connection() as conn:
        await update_product(conn, ids["lamp"], name="Copper Floor Lamp")
    silent = SearchIndexConsumer(stores.pg, stores.search, stores.settings.search_index_prefix)
    await drain(stores, silent)
    await stores.search.refresh(alias_name(stores.settings.search_index_prefix))
    assert await _names(client, "lamp") == ["Brass Floor Lamp"]
    await stores.search_cache.bump()
    assert await _names(client, "lamp") == ["Copper Floor Lamp"]

    # the worker's consumer bumps once its writes are visible: an edit, stock, a delete
    async with stores.pg.connection() as conn:
        await update_product(conn, ids["lamp"], name="Silver Floor Lamp")
    await drain(stores, consumer_for(stores))
    assert await _names(client, "lamp") == ["Silver Floor Lamp"]

    stocked = {"q": "oak", "in_stock": "false"}
    assert (await client.get("/search/products", params=stocked)).json()["total"] == 0
    async with stores.pg.connection() as conn:
        await update_product(conn, ids["chair"], stock=0)
    await drain(stores, consumer_for(stores))
    out = (await client.get("/search/products", params=stocked)).json()
    assert [h["name"] for h in out["hits"]] == ["Oak Chair"]

    async with stores.pg.connection() as conn:
        await delete_product(conn, ids["desk"])
    await drain(stores, consumer_for(stores))
    assert await _names(client, "oak") == ["Oak Chair"]
    suggestions = (await client.get("/search/suggest", params={"q": "oak"})).json()
    assert [s["name"] for s in suggestions["suggestions"]] == ["Oak Chair"]


async def test_a_reindex_and_a_repair_invalidate(
    cli_settings: Settings, client: httpx.AsyncClient, stores: Stores
) -> None:
    ids = await _catalog(stores)
    assert await _names(client, "lamp") == ["Brass Floor Lamp"]
    async with stores.pg.connection() as conn:  # a change whose event was lost
        await update_product(conn, ids["lamp"], name="Iron Floor Lamp", emit=False)
    result = await asyncio.to_thread(CliRunner().invoke, search_commands.search_cli, ["reindex"])
    assert result.exit_code == 0, result.output
    assert await _names(client, "lamp") == ["Iron Floor Lamp"]

    async with stores.pg.connection() as conn:
        await update_product(conn, ids["lamp"], name="Steel Floor Lamp", emit=False)
    report = await reconcile(
        stores.pg,
        stores.search,
        stores.settings.search_index_prefix,
        on_visible=stores.search_cache.bump,
    )
    assert report.repaired_ids == [ids["lamp"]]
    assert await _names(client, "lamp") == ["Steel Floor Lamp"]


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(search_commands, "get_settings", lambda: settings)
    return settings


async def _search_keys(stores: Stores) -> list[bytes]:
    pattern = f"{stores.settings.redis_prefix}search:products:*"
    return [k async for k in stores.redis.scan_iter(match=pattern)]


async def test_the_ttl_bounds_an_entry_and_zero_turns_the_cache_off(
    settings: Settings, stores: Stores
) -> None:
    await _catalog(stores)
    for ttl in (7.0, 0.0):
        async with _client(settings.model_copy(update={"search_cache_ttl_s": ttl})) as client:
            await stores.search_cache.flush()
            before = await engine_queries(stores)
            first = await client.get("/search/products", params={"q": "oak"})
            once = await engine_queries(stores) - before
            assert once >= 1
            second = await client.get("/search/products", params={"q": "oak"})
            assert first.content == second.content
            keys = await _search_keys(stores)
            if ttl:  # stored with the TTL, and the second search was a hit
                (key,) = keys
                assert 0 < await stores.redis.pttl(key) <= 7000
                assert await engine_queries(stores) - before == once
            else:  # off: nothing stored, the engine answers every time
                assert keys == []
                assert await engine_queries(stores) - before == 2 * once


async def test_concurrent_misses_of_one_key_ask_the_engine_once(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    await _catalog(stores)
    before = await engine_queries(stores)
    await client.get("/search/products", params={"q": "desk"})
    one = await engine_queries(stores) - before
    before = await engine_queries(stores)
    answers = await asyncio.gather(
        *(client.get("/search/products", params={"q": "chair"}) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert await engine_queries(stores) - before == one


@pytest.fixture
async def via_proxy(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """An app whose Redis is reached through a proxy the test can cut."""
    async with proxy_to(settings.redis_url) as proxy:
        url = settings.redis_url.replace(
            settings.redis_url.split("//", 1)[1].split("/", 1)[0], f"127.0.0.1:{proxy.port}"
        )
        async with _client(settings.model_copy(update={"redis_url": url})) as client:
            yield client, proxy


async def test_redis_down_still_answers_from_the_engine(
    via_proxy: tuple[httpx.AsyncClient, Any], stores: Stores
) -> None:
    client, proxy = via_proxy
    await _catalog(stores)
    cached = await client.get("/search/products", params={"q": "oak"})
    assert cached.status_code == 200
    failures = counted("products", "error") + counted("products", "bypass")
    await proxy.cut()
    before = await engine_queries(stores)
    for _ in range(8):  # past the breaker's threshold: errors, then bypasses
        down = await client.get("/search/products", params={"q": "oak"})
        assert down.status_code == 200
        assert down.content == cached.content
    suggest = await client.get("/search/suggest", params={"q": "oak"})
    assert suggest.status_code == 200 and suggest.json()["suggestions"]
    assert await engine_queries(stores) - before >= 9
    assert counted("products", "error") + counted("products", "bypass") >= failures + 8
    assert counted("products", "bypass") > 0
    await proxy.restore()


async def test_a_fill_after_a_bump_is_not_stored(stores: Stores) -> None:
    """A miss that read the generation before a bump must not store its answer under the
    bump's generation: the answer may predate the writes the bump stands for."""
    await _catalog(stores)
    cache = stores.search_cache
    stale = fills("stale")

    async def slow_load() -> bytes:
        await cache.bump()  # the sync bumps while the engine answers this miss
        return b'{"old":true}'

    assert await cache.get_or_load("products", "k1", slow_load) == b'{"old":true}'
    assert fills("stale") == stale + 1

    async def fresh() -> bytes:
        return b'{"new":true}'

    assert await cache.get_or_load("products", "k1", fresh) == b'{"new":true}'
    assert await cache.get_or_load("products", "k1", slow_load) == b'{"new":true}'  # a hit
