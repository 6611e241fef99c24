"""GET /search/products and /search/suggest against real OpenSearch."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from tests.support.search import ON_EACH_ENGINE, consumer_for, drain, insert_product

pytestmark = ON_EACH_ENGINE


async def _index_all(stores: Stores) -> None:
    await drain(stores, consumer_for(stores))
    await stores.search.refresh(f"{stores.settings.search_index_prefix}-products")


async def _search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/search/products", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ids(client: httpx.AsyncClient, q: str) -> list[int]:
    return [h["id"] for h in (await _search(client, q=q))["hits"]]


async def test_relevance_basics(client: httpx.AsyncClient, stores: Stores) -> None:
    async with stores.pg.connection() as conn:
        chair = await insert_product(
            conn, sku="CH-100", name="Ergonomic Office Chair", description="Mesh back."
        )
        desk = await insert_product(
            conn,
            sku="DK-200",
            name="Standing Desk",
            description="Pairs well with an office chair of any kind.",
        )
        couch = await insert_product(
            conn, sku="SF-300", name="Leather Couch", description="Three seats, café style."
        )
        await insert_product(conn, sku="LM-400", name="Floor Lamp", description="Warm light.")
    await _index_all(stores)

    ranked = await _ids(client, "office chair")
    assert ranked[:2] == [chair, desk]  # a name match outranks a description mention

    assert (await _ids(client, "ofice chiar"))[0] == chair
    assert (await _ids(client, "chairs"))[0] == chair
    assert await _ids(client, "desks") == [desk]
    assert await _ids(client, "sofa") == [couch]  # synonym
    assert await _ids(client, "cafe") == [couch]  # folding
    assert await _ids(client, "ch-100") == [chair]  # SKU
    assert await _ids(client, "SF-3") == [couch]  # prefix

    top = (await _search(client, q="office chair"))["hits"][0]
    # OpenSearch tags each term; Elasticsearch 9's unified highlighter tags a run of
    # adjacent matches once: both mark exactly "Office Chair"
    assert top["highlight"]["name"] in (
        ["Ergonomic <em>Office</em> <em>Chair</em>"],
        ["Ergonomic <em>Office Chair</em>"],
    )
    assert top["price"] == "10.00" and top["sku"] == "CH-100"


CATALOG = [
    # (category, brand, price_minor, stock, color)
    ("Furniture/Chairs/Office", "Acme", 1_999, 3, "red"),
    ("Furniture/Chairs/Office", "Bolt", 4_999, 0, "black"),
    ("Furniture/Chairs/Dining", "Acme", 12_000, 5, "red"),
    ("Furniture/Desks", "Bolt", 30_000, 1, "black"),
    ("Furniture/Desks", "Crest", 75_000, 0, "white"),
    ("Lighting/Lamps", "Acme", 2_500, 9, "white"),
    ("Lighting/Lamps", "Crest", 9_999, 2, "red"),
    ("Lighting", "Crest", 150_000, 1, "black"),
]

_CAT = "(category = 'Furniture' OR category LIKE 'Furniture/%%')"
_ACME_CREST = "brand IN ('Acme', 'Crest')"
_PRICE = "price_minor BETWEEN 2500 AND 30000"

# (query parameters, the SQL of every filter, the SQL of a multi-select facet's filters
# where they differ: brand and price are counted without their own filter)
FILTERS: list[tuple[dict[str, Any], str, dict[str, str]]] = [
    ({}, "TRUE", {}),
    ({"category": "Furniture"}, _CAT, {}),
    (
        {"category": "Furniture/Chairs", "in_stock": "true"},
        "(category LIKE 'Furniture/Chairs/%%') AND stock > 0",
        {},
    ),
    ({"brand": ["Acme", "Crest"]}, _ACME_CREST, {"brand": "TRUE"}),
    ({"min_price": "25.00", "max_price": "300"}, _PRICE, {"price": "TRUE"}),
    (
        {
            "category": "Furniture",
            "brand": ["Acme", "Crest"],
            "min_price": "25",
            "max_price": "300",
        },
        f"{_CAT} AND {_ACME_CREST} AND {_PRICE}",
        {"brand": f"{_CAT} AND {_PRICE}", "price": f"{_CAT} AND {_ACME_CREST}"},
    ),
    ({"attr.color": "red"}, "attributes->>'color' = 'red'", {}),
    (
        {"q": "lamp", "attr.color": "white"},
        "name ILIKE '%%lamp%%' AND attributes->>'color' = 'white'",
        {},
    ),
]


@pytest.mark.parametrize(("params", "where", "facet_where"), FILTERS)
async def test_filter_and_facet_counts_agree_with_postgres(
    client: httpx.AsyncClient,
    stores: Stores,
    params: dict[str, Any],
    where: str,
    facet_where: dict[str, str],
) -> None:
    async with stores.pg.connection() as conn:
        for i, (category, brand, price, stock, color) in enumerate(CATALOG):
            kind = "Lamp" if category.startswith("Lighting") else "Piece"
            await insert_product(
                conn,
                name=f"{kind} {i}",
                category=category,
                brand=brand,
                price_minor=price,
                stock=stock,
                attributes={"color": color},
            )
        await insert_product(conn, name="Hidden Lamp", status="draft", attributes={"color": "red"})
    await _index_all(stores)
    body = await _search(client, **params)

    def live(facet: str | None = None) -> str:
        return f"deleted_at IS NULL AND status = 'active' AND {facet_where.get(facet or '', where)}"

    async with stores.pg.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) AS n FROM products WHERE {live()}")
        row = await cur.fetchone()
        assert row is not None
        assert body["total"] == row["n"]
        assert len(body["hits"]) == min(row["n"], 20)
        for facet in ("category", "brand"):
            cur = await conn.execute(
                f"SELECT {facet} AS value, count(*) AS count FROM products WHERE {live(facet)}"
                f" GROUP BY {facet}"
            )
            expected = {r["value"]: r["count"] for r in await cur.fetchall()}
            assert {f["value"]: f["count"] for f in body["facets"][facet]} == expected
        for bucket in body["facets"]["price"]:
            low = bucket["from_minor"] if bucket["from_minor"] is not None else 0
            high = bucket["to_minor"] if bucket["to_minor"] is not None else 2**62
            cur = await conn.execute(
                f"SELECT count(*) AS n FROM products WHERE {live('price')}"
                " AND price_minor >= %s AND price_minor < %s",
                (low, high),
            )
            row = await cur.fetchone()
            assert row is not None and bucket["count"] == row["n"], bucket


async def test_sorts_and_cursor_pagination_walk_every_hit_once(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    async with stores.pg.connection() as conn:
        for i in range(23):
            await insert_product(conn, name=f"Widget {i}", price_minor=(i * 7919) % 1000)
    await _index_all(stores)
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT id FROM products ORDER BY price_minor, id")
        expected = [r["id"] for r in await cur.fetchall()]

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"sort": "price_asc", "limit": 5, "q": "widget"}
        if cursor:
            params["cursor"] = cursor
        body = await _search(client, **params)
        seen += [h["id"] for h in body["hits"]]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert seen == expected
    assert pages == 5

    desc = await _search(client, sort="price_desc", limit=3)
    prices = [float(h["price"]) for h in desc["hits"]]
    assert prices == sorted(prices, reverse=True)
    newest = await _search(client, sort="newest", limit=3)
    assert [h["id"] for h in newest["hits"]] == sorted(expected, reverse=True)[:3]


async def test_suggest_completes_prefixes(client: httpx.AsyncClient, stores: Stores) -> None:
    async with stores.pg.connection() as conn:
        chair = await insert_product(conn, sku="CH-1", name="Office Chair")
        await insert_product(conn, sku="DK-1", name="Oak Desk")
    await _index_all(stores)
    response = await client.get("/search/suggest", params={"q": "off ch"})
    assert response.status_code == 200
    assert [s["id"] for s in response.json()["suggestions"]] == [chair]
    names = {s["name"] for s in (await client.get("/search/suggest?q=o")).json()["suggestions"]}
    assert names == {"Office Chair", "Oak Desk"}


async def test_no_index_yet_is_an_empty_answer(client: httpx.AsyncClient) -> None:
    body = await _search(client, q="anything")
    assert body["total"] == 0 and body["hits"] == [] and body["next_cursor"] is None
    suggestions = await client.get("/search/suggest", params={"q": "a"})
    assert suggestions.json() == {"suggestions": []}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/search/products?limit=101", "limit"),
        ("/search/products?limit=0", "limit"),
        ("/search/products?sort=cheapest", "sort"),
        ("/search/products?min_price=-1", "min_price"),
        ("/search/products?min_price=1.234", "min_price"),
        ("/search/products?min_price=abc", "min_price"),
        ("/search/products?min_price=10&max_price=5", "min_price"),
        ("/search/products?in_stock=maybe", "in_stock"),
        ("/search/products?cursor=not-a-cursor", "cursor"),
        ("/search/products?attr.co%24or=red", "attr.co$or"),
        ("/search/products?q=" + "x" * 201, "q"),
        ("/search/suggest", "q"),
        ("/search/suggest?q=", "q"),
        ("/search/suggest?q=%20%20", "q"),
        ("/search/suggest?q=a&limit=500", "limit"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(
    client: httpx.AsyncClient, path: str, field: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"].removeprefix("query.") for e in response.json()["errors"]}


async def test_cursor_of_another_sort_is_422(client: httpx.AsyncClient, stores: Stores) -> None:
    async with stores.pg.connection() as conn:
        for i in range(3):
            await insert_product(conn, name=f"Gadget {i}")
    await _index_all(stores)
    cursor = (await _search(client, sort="price_asc", limit=1))["next_cursor"]
    assert cursor
    response = await client.get("/search/products", params={"sort": "newest", "cursor": cursor})
    assert response.status_code == 422


async def test_engine_down_is_503_with_retry_after_and_writes_still_commit(
    settings: Settings,
) -> None:
    down = settings.model_copy(update={"search_url": "http://127.0.0.1:1", "search_timeout_s": 1})
    app = create_app(down)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for path in ("/search/products?q=chair", "/search/suggest?q=ch"):
                response = await c.get(path)
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"]
                assert response.json()["store"] == "search"
        stores: Stores = app.state.stores
        async with stores.pg.connection() as conn:
            pid = await insert_product(conn, name="Written while search is down")
            cur = await conn.execute(
                "SELECT count(*) AS n FROM outbox_pending WHERE consumer = 'search'"
                " AND event_id IN (SELECT id FROM outbox WHERE aggregate_id = %s)",
                (pid,),
            )
            row = await cur.fetchone()
    assert row is not None and row["n"] == 1  # waiting for the engine, not lost
