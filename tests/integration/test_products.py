"""Products API against real Postgres and Redis: CRUD, pagination, filters, If-Match, auth."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from storage import outbox
from tests.support.auth import bearer


def product(sku: str = "SKU-1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": sku,
        "name": "Office Chair",
        "description": "A chair for the office",
        "brand": "Sitwell",
        "category": "Furniture/Chairs/Office Chairs",
        "price": "199.99",
        "currency": "EUR",
        "stock": 7,
        "attributes": {"color": "black"},
    }
    body.update(fields)
    return body


@pytest.fixture
async def admin(stores: Stores) -> dict[str, str]:
    return await bearer(stores, "admin")


async def create(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> Any:
    response = await client.post("/products", json=product(**fields), headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_read_update_delete(
    client: httpx.AsyncClient, admin: dict[str, str], stores: Stores
) -> None:
    created = await client.post("/products", json=product(), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["price"] == "199.99" and body["currency"] == "EUR"
    assert body["version"] == 1 and body["status"] == "active"
    assert created.headers["location"] == f"/products/{body['id']}"
    assert created.headers["etag"] == '"1"'
    pid = body["id"]

    read = await client.get(f"/products/{pid}")
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["etag"] == '"1"'
    again = await client.get(f"/products/{pid}")  # from the cache now: the same bytes
    assert again.content == read.content

    patched = await client.patch(f"/products/{pid}", json={"price": "149.5"}, headers=admin)
    assert patched.status_code == 200, patched.text
    assert patched.json()["price"] == "149.50"
    assert patched.json()["name"] == "Office Chair"
    assert patched.headers["etag"] == '"2"'
    after = await client.get(f"/products/{pid}")
    assert after.json()["price"] == "149.50" and after.headers["etag"] == '"2"'

    deleted = await client.delete(f"/products/{pid}", headers=admin)
    assert deleted.status_code == 204
    assert (await client.get(f"/products/{pid}")).status_code == 404
    assert (await client.delete(f"/products/{pid}", headers=admin)).status_code == 404
    assert (
        await client.patch(f"/products/{pid}", json={"stock": 1}, headers=admin)
    ).status_code == (404)

    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT event_type, version FROM outbox WHERE aggregate_id = %s ORDER BY id", (pid,)
        )
        events = [(r["event_type"], r["version"]) for r in await cur.fetchall()]
    assert events == [("product.upserted", 1), ("product.upserted", 2), ("product.deleted", 3)]


async def test_if_none_match_gives_304(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    pid = (await create(client, admin))["id"]
    response = await client.get(f"/products/{pid}", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.headers["etag"] == '"1"'


async def test_duplicate_live_sku_is_409_and_a_deleted_sku_is_free(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    first = await create(client, admin, sku="DUP")
    dup = await client.post("/products", json=product(sku="DUP"), headers=admin)
    assert dup.status_code == 409
    assert dup.headers["content-type"].startswith("application/problem+json")
    assert "DUP" in dup.json()["detail"] and dup.json()["field"] == "sku"
    other = await create(client, admin, sku="OTHER")
    clash = await client.patch(f"/products/{other['id']}", json={"sku": "DUP"}, headers=admin)
    assert clash.status_code == 409
    await client.delete(f"/products/{first['id']}", headers=admin)
    assert (await client.post("/products", json=product(sku="DUP"), headers=admin)).status_code == (
        201
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", "1.999"),
        ("price", "-1"),
        ("price", "abc"),
        ("price", "NaN"),
        ("price", ""),
        ("price", 10),  # a decimal string, never a JSON number
        ("stock", False),  # strict: no bool (or float, or string) as an integer
        ("stock", "3"),
        ("currency", "eur"),
        ("currency", "JPY"),  # not a shop currency (and has no decimals at all)
        ("currency", "XYZ"),
        ("stock", -1),
        ("attributes", {"color": 3}),
        ("sku", ""),
        ("sku", "   "),
        ("description", "NUL \x00 inside"),  # Postgres text cannot hold it: 422, not 500
        ("attributes", {"colour\x00": "red"}),
        ("name", None),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str], field: str, value: Any
) -> None:
    response = await client.post("/products", json=product(**{field: value}), headers=admin)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


async def test_bad_ids_and_patches_are_4xx_never_500(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    pid = (await create(client, admin))["id"]
    for path in ("/products/99999999999999999999", "/products/-1", "/products/abc"):
        assert (await client.get(path)).status_code == 422
    assert (await client.get("/products/9223372036854775807")).status_code == 404
    for field in ("name", "price", "status"):
        null = await client.patch(f"/products/{pid}", json={field: None}, headers=admin)
        assert null.status_code == 422 and field in null.json()["detail"], field
    for currency, status in (("CHF", 422), ("EUR", 200)):  # shop currencies: USD EUR GBP
        patched = await client.patch(f"/products/{pid}", json={"currency": currency}, headers=admin)
        assert patched.status_code == status, patched.text
    assert patched.json()["currency"] == "EUR"
    empty = await client.patch(f"/products/{pid}", json={}, headers=admin)
    assert empty.status_code == 422
    unknown = await client.patch(f"/products/{pid}", json={"colour": "red"}, headers=admin)
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    for query in ("limit=201", "limit=0", "cursor=garbage", "min_price=1.234", "status=gone"):
        response = await client.get(f"/products?{query}")
        assert response.status_code == 422, query
        assert query.split("=")[0] in response.json()["detail"]


async def test_if_match(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    pid = (await create(client, admin))["id"]
    stale = await client.patch(
        f"/products/{pid}", json={"stock": 1}, headers={**admin, "If-Match": '"7"'}
    )
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == '"1"'
    garbage = await client.patch(
        f"/products/{pid}", json={"stock": 1}, headers={**admin, "If-Match": "nonsense"}
    )
    # not an entity tag at all: refused as input (the schema's pattern), naming the header
    assert garbage.status_code == 422 and "If-Match" in garbage.json()["detail"]
    ok = await client.patch(
        f"/products/{pid}", json={"stock": 1}, headers={**admin, "If-Match": '"1"'}
    )
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    weak = await client.patch(
        f"/products/{pid}", json={"stock": 2}, headers={**admin, "If-Match": 'W/"2"'}
    )
    assert weak.status_code == 200
    star = await client.patch(
        f"/products/{pid}", json={"stock": 3}, headers={**admin, "If-Match": "*"}
    )
    assert star.status_code == 200 and star.json()["version"] == 4
    old_delete = await client.delete(f"/products/{pid}", headers={**admin, "If-Match": '"3"'})
    assert old_delete.status_code == 412
    delete = await client.delete(f"/products/{pid}", headers={**admin, "If-Match": '"4"'})
    assert delete.status_code == 204


async def test_concurrent_if_match_writers_one_wins(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Ten writers holding the same ETag: exactly one update lands, the others get 412."""
    pid = (await create(client, admin))["id"]
    responses = await asyncio.gather(
        *(
            client.patch(
                f"/products/{pid}", json={"stock": i}, headers={**admin, "If-Match": '"1"'}
            )
            for i in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 9
    final = await client.get(f"/products/{pid}")
    assert final.json()["version"] == 2


async def test_auth_matrix_for_writes(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    pid = (await create(client, admin))["id"]
    customer = await bearer(stores, "customer")
    warehouse = await bearer(stores, "warehouse")
    bad = {"Authorization": "Bearer psk_not-a-key"}
    writes = [
        ("POST", "/products", product(sku="NEW")),
        ("PATCH", f"/products/{pid}", {"stock": 3}),
        ("DELETE", f"/products/{pid}", None),
    ]
    for method, path, body in writes:
        for headers, status in (({}, 401), (bad, 401), (customer, 403), (warehouse, 403)):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == status, (method, headers, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/products/{pid}")).status_code == 200  # reads are public
    assert (await client.get("/products")).status_code == 200
    for method, path, body in writes:
        response = await client.request(method, path, json=body, headers=admin)
        assert response.status_code in (200, 201, 204), (method, response.text)


async def test_keyset_pagination_walks_every_product_once(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ids = [(await create(client, admin, sku=f"P-{i:02d}"))["id"] for i in range(12)]
    await client.delete(f"/products/{ids[3]}", headers=admin)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/products", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i for i in ids if i != ids[3]]
    assert pages == 3


async def test_list_filters(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    chair = await create(client, admin, sku="C1", category="Furniture/Chairs", price="50.00")
    desk = await create(
        client, admin, sku="D1", category="Furniture/Desks", brand="Deskly", price="300"
    )
    lamp = await create(client, admin, sku="L1", category="Lighting", price="20.00")
    furn_x = await create(
        client, admin, sku="X1", category="Furniturex", status="draft", price="500"
    )

    async def ids(**params: Any) -> list[int]:
        response = await client.get("/products", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["items"]]

    assert await ids(category="Furniture") == [chair["id"], desk["id"]]
    assert await ids(category="Furniture/Chairs") == [chair["id"]]
    assert await ids(brand="Deskly") == [desk["id"]]
    assert await ids(min_price="40", max_price="300.00") == [chair["id"], desk["id"]]
    assert await ids(max_price="20") == [lamp["id"]]
    assert await ids(status="draft") == [furn_x["id"]]
    assert await ids(category="Furniture", brand="Sitwell") == [chair["id"]]
    assert await ids(category="%") == []


async def test_every_write_emits_one_event_in_its_transaction(
    client: httpx.AsyncClient, admin: dict[str, str], stores: Stores
) -> None:
    pid = (await create(client, admin))["id"]
    await client.patch(f"/products/{pid}", json={"stock": 9}, headers=admin)
    failed = await client.patch(
        f"/products/{pid}", json={"stock": 1}, headers={**admin, "If-Match": '"1"'}
    )
    assert failed.status_code == 412
    async with stores.pg.connection() as conn, conn.transaction():
        events = await outbox.claim(conn, "cache")
    assert [(e.aggregate_id, e.version) for e in events] == [(pid, 1), (pid, 2)]


async def test_the_shop_currencies_come_from_the_settings(
    settings: Settings, admin: dict[str, str]
) -> None:
    """`currencies` decides what a product may be priced in, the default for a product
    sent without one (the first), and the enum the OpenAPI document shows."""
    app = create_app(settings.model_copy(update={"currencies": ["CHF", "EUR"]}))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            body = product(sku="CUR-1")
            del body["currency"]
            created = await c.post("/products", json=body, headers=admin)
            assert created.status_code == 201, created.text
            assert created.json()["currency"] == "CHF"
            usd = await c.post(
                "/products", json=product(sku="CUR-2", currency="USD"), headers=admin
            )
            assert usd.status_code == 422
            assert usd.json()["errors"][0]["field"] == "currency"
            schema = (await c.get("/openapi.json")).json()["components"]["schemas"]["ProductIn"]
            assert schema["properties"]["currency"]["enum"] == ["CHF", "EUR"]
            assert schema["properties"]["currency"]["default"] == "CHF"
