"""Orders API against real Postgres: placing, reading, history, cancel, transitions,
the auth matrix and bad input. Products are made with plain SQL (the products API
belongs to another area)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from app.stores import Stores
from tests.support.auth import bearer


async def insert_product(
    stores: Stores,
    *,
    stock: int = 10,
    price_minor: int = 1999,
    currency: str = "USD",
    status: str = "active",
) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO products (sku, name, price_minor, currency, stock, status)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (f"SKU-{uuid.uuid4().hex[:8]}", "Test Chair", price_minor, currency, stock, status),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def product_row(stores: Stores, product_id: int) -> dict[str, Any]:
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT stock, version FROM products WHERE id = %s", (product_id,))
        row = await cur.fetchone()
    assert row is not None
    return row


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def place(
    client: httpx.AsyncClient, auth: dict[str, str], items: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post("/orders", json={"items": items}, headers={**auth, **key()})


async def test_place_order_reserves_stock_and_prices_on_the_server(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    chair = await insert_product(stores, stock=5, price_minor=19999)
    lamp = await insert_product(stores, stock=3, price_minor=250)
    auth = await bearer(stores, "customer")

    response = await place(
        client,
        auth,
        [{"product_id": chair, "quantity": 2}, {"product_id": lamp, "quantity": 1}],
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/orders/{body['id']}"
    assert body["status"] == "pending"
    assert body["currency"] == "USD"
    assert body["total"] == "402.48"
    assert [
        (i["product_id"], i["quantity"], i["unit_price"], i["line_total"]) for i in body["items"]
    ] == [(chair, 2, "199.99", "399.98"), (lamp, 1, "2.50", "2.50")]
    assert set(body) >= {"id", "status", "items", "total", "currency", "created_at"}
    assert await product_row(stores, chair) == {"stock": 3, "version": 2}
    assert await product_row(stores, lamp) == {"stock": 2, "version": 2}

    read = await client.get(f"/orders/{body['id']}", headers=auth)
    assert read.status_code == 200
    assert read.json() == body


async def test_order_and_stock_changes_are_in_the_outbox(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=5)
    auth = await bearer(stores, "customer")
    order = (await place(client, auth, [{"product_id": product, "quantity": 1}])).json()
    cancel = await client.delete(f"/orders/{order['id']}", headers=auth)
    assert cancel.status_code == 200

    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT aggregate, aggregate_id, event_type, version FROM outbox ORDER BY id"
        )
        events = [tuple(r.values()) for r in await cur.fetchall()]
    assert events == [
        ("product", product, "product.upserted", 2),
        ("order", order["id"], "order.created", 1),
        ("product", product, "product.upserted", 3),
        ("order", order["id"], "order.cancelled", 2),
    ]


async def test_duplicate_lines_are_merged(client: httpx.AsyncClient, stores: Stores) -> None:
    product = await insert_product(stores, stock=5, price_minor=100)
    auth = await bearer(stores, "customer")
    response = await place(
        client,
        auth,
        [{"product_id": product, "quantity": 1}, {"product_id": product, "quantity": 2}],
    )
    assert response.status_code == 201, response.text
    assert [(i["product_id"], i["quantity"]) for i in response.json()["items"]] == [(product, 3)]
    assert response.json()["total"] == "3.00"
    assert (await product_row(stores, product))["stock"] == 2


async def test_refusals_name_the_product_and_change_nothing(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    usd = await insert_product(stores, stock=2)
    eur = await insert_product(stores, stock=2, currency="EUR")
    draft = await insert_product(stores, stock=2, status="draft")
    auth = await bearer(stores, "customer")

    short = await place(client, auth, [{"product_id": usd, "quantity": 3}])
    assert short.status_code == 409
    assert short.headers["content-type"] == "application/problem+json"
    assert short.json()["product_id"] == usd and short.json()["available"] == 2

    unknown = await place(client, auth, [{"product_id": 987654321, "quantity": 1}])
    assert unknown.status_code == 422
    assert unknown.json()["product_id"] == 987654321
    assert unknown.json()["errors"][0]["field"] == "items.product_id"

    mixed = await place(
        client, auth, [{"product_id": usd, "quantity": 1}, {"product_id": eur, "quantity": 1}]
    )
    assert mixed.status_code == 422
    assert mixed.json()["currencies"] == ["EUR", "USD"]
    assert mixed.json()["errors"][0]["field"] == "items"

    dear = await insert_product(stores, stock=10_000, price_minor=2**62)
    overflow = await place(client, auth, [{"product_id": dear, "quantity": 10_000}])
    assert overflow.status_code == 422
    assert [(e["field"], e["location"]) for e in overflow.json()["errors"]] == [("items", "body")]
    assert (await product_row(stores, dear))["stock"] == 10_000

    not_for_sale = await place(client, auth, [{"product_id": draft, "quantity": 1}])
    assert not_for_sale.status_code == 409
    assert not_for_sale.json()["product_id"] == draft

    for product in (usd, eur, draft):
        assert await product_row(stores, product) == {"stock": 2, "version": 1}
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM orders")
        assert (await cur.fetchone()) == {"n": 0}
        cur = await conn.execute("SELECT count(*) AS n FROM outbox")
        assert (await cur.fetchone()) == {"n": 0}


async def test_bad_input_is_4xx_naming_the_field(client: httpx.AsyncClient, stores: Stores) -> None:
    product = await insert_product(stores)
    auth = await bearer(stores, "customer")
    cases: list[tuple[Any, str]] = [
        ({"items": [{"product_id": product, "quantity": 0}]}, "items.0.quantity"),
        ({"items": [{"product_id": product, "quantity": -1}]}, "items.0.quantity"),
        ({"items": [{"product_id": product, "quantity": 10**30}]}, "items.0.quantity"),
        ({"items": [{"product_id": 2**70, "quantity": 1}]}, "items.0.product_id"),
        ({"items": [{"product_id": "abc", "quantity": 1}]}, "items.0.product_id"),
        ({"items": [{"product_id": 1.5, "quantity": 1}]}, "items.0.product_id"),
        ({"items": [{"product_id": product, "quantity": True}]}, "items.0.quantity"),
        ({"items": [{"product_id": product, "quantity": "1"}]}, "items.0.quantity"),
        ({"items": [{"product_id": product}]}, "items.0.quantity"),
        ({"items": []}, "items"),
        ({"items": [{"product_id": product, "quantity": 1}] * 101}, "items"),
        ({}, "items"),
        ({"items": [{"product_id": product, "quantity": 1, "price": "0.01"}]}, "items.0.price"),
    ]
    for payload, field in cases:
        response = await client.post("/orders", json=payload, headers={**auth, **key()})
        assert response.status_code == 422, (payload, response.text)
        assert field in response.json()["detail"], (payload, response.json())

    broken = await client.post(
        "/orders",
        content=b"{not json",
        headers={**auth, **key(), "content-type": "application/json"},
    )
    assert broken.status_code == 422

    no_key = await client.post(
        "/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=auth
    )
    assert no_key.status_code == 422
    assert "Idempotency-Key" in no_key.json()["detail"]
    long_key = await client.post(
        "/orders",
        json={"items": [{"product_id": product, "quantity": 1}]},
        headers={**auth, "Idempotency-Key": "k" * 256},
    )
    assert long_key.status_code == 422
    assert "Idempotency-Key" in long_key.json()["detail"]
    blank_key = await client.post(
        "/orders",
        json={"items": [{"product_id": product, "quantity": 1}]},
        headers={**auth, "Idempotency-Key": "  "},
    )
    assert blank_key.status_code == 422
    assert "Idempotency-Key" in blank_key.json()["detail"]

    for path in ("/orders/abc", "/orders/0", f"/orders/{2**70}"):
        response = await client.get(path, headers=auth)
        assert response.status_code == 422, path
        assert "order_id" in response.json()["detail"]
    assert (await client.get("/orders?limit=0", headers=auth)).status_code == 422
    assert (await client.get("/orders?limit=1000", headers=auth)).status_code == 422
    bad_cursor = await client.get("/orders?cursor=bm9wZQ", headers=auth)
    assert bad_cursor.status_code == 422
    assert "cursor" in bad_cursor.text
    assert (await product_row(stores, product))["stock"] == 10


async def test_history_is_newest_first_with_keyset_pages(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=100)
    alice = await bearer(stores, "customer")
    bob = await bearer(stores, "customer")
    alice_ids = [
        (await place(client, alice, [{"product_id": product, "quantity": 1}])).json()["id"]
        for _ in range(5)
    ]
    bob_id = (await place(client, bob, [{"product_id": product, "quantity": 1}])).json()["id"]

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get("/orders", params=params, headers=alice)
        assert page.status_code == 200, page.text
        seen += [o["id"] for o in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert seen == list(reversed(alice_ids))
    assert pages == 3

    warehouse = await bearer(stores, "warehouse")
    everything = await client.get("/orders", headers=warehouse)
    assert [o["id"] for o in everything.json()["items"]] == [bob_id, *reversed(alice_ids)]
    bobs_customer = everything.json()["items"][0]["customer_id"]
    only_bob = await client.get("/orders", params={"customer_id": bobs_customer}, headers=warehouse)
    assert [o["id"] for o in only_bob.json()["items"]] == [bob_id]
    snooping = await client.get("/orders", params={"customer_id": bobs_customer}, headers=alice)
    assert snooping.status_code == 403


async def test_auth_matrix(client: httpx.AsyncClient, stores: Stores) -> None:
    product = await insert_product(stores, stock=10)
    owner = await bearer(stores, "customer")
    other = await bearer(stores, "customer")
    admin = await bearer(stores, "admin")
    warehouse = await bearer(stores, "warehouse")
    order = (await place(client, owner, [{"product_id": product, "quantity": 1}])).json()
    body = {"items": [{"product_id": product, "quantity": 1}]}
    oid = order["id"]

    for headers in ({}, {"Authorization": "Bearer psk_nope"}, {"Authorization": "Basic x"}):
        assert (
            await client.post("/orders", json=body, headers={**headers, **key()})
        ).status_code == 401
        assert (await client.get("/orders", headers=headers)).status_code == 401
        assert (await client.get(f"/orders/{oid}", headers=headers)).status_code == 401
        assert (await client.delete(f"/orders/{oid}", headers=headers)).status_code == 401

    # placing is for customers only
    for headers in (admin, warehouse):
        assert (
            await client.post("/orders", json=body, headers={**headers, **key()})
        ).status_code == 403
    # moving along is for warehouse and admin
    transition = {"status": "paid"}
    assert (
        await client.post(f"/orders/{oid}/transitions", json=transition, headers=owner)
    ).status_code == 403
    # cancelling is for the owner and admin
    assert (await client.delete(f"/orders/{oid}", headers=warehouse)).status_code == 403
    # another customer's order does not exist for them
    assert (await client.get(f"/orders/{oid}", headers=other)).status_code == 404
    assert (await client.delete(f"/orders/{oid}", headers=other)).status_code == 404
    assert (await client.get("/orders", headers=other)).json()["items"] == []
    # owner, warehouse and admin can read it
    for headers in (owner, warehouse, admin):
        response = await client.get(f"/orders/{oid}", headers=headers)
        assert response.status_code == 200 and response.json()["id"] == oid
    assert (await client.get("/orders/999999", headers=admin)).status_code == 404
    # nothing above changed the order
    assert (await client.get(f"/orders/{oid}", headers=owner)).json()["status"] == "pending"


async def test_cancel_restores_stock_and_twice_is_a_no_op(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=5)
    auth = await bearer(stores, "customer")
    order = (await place(client, auth, [{"product_id": product, "quantity": 4}])).json()
    assert (await product_row(stores, product))["stock"] == 1

    first = await client.delete(f"/orders/{order['id']}", headers=auth)
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert first.json()["version"] == 2
    assert await product_row(stores, product) == {"stock": 5, "version": 3}

    second = await client.delete(f"/orders/{order['id']}", headers=auth)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert await product_row(stores, product) == {"stock": 5, "version": 3}

    paying = await client.post(
        f"/orders/{order['id']}/transitions",
        json={"status": "paid"},
        headers=await bearer(stores, "warehouse"),
    )
    assert paying.status_code == 409


async def test_warehouse_moves_orders_along_and_shipped_cannot_be_cancelled(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=5)
    auth = await bearer(stores, "customer")
    warehouse = await bearer(stores, "warehouse")
    admin = await bearer(stores, "admin")
    oid = (await place(client, auth, [{"product_id": product, "quantity": 2}])).json()["id"]
    url = f"/orders/{oid}/transitions"

    too_early = await client.post(url, json={"status": "shipped"}, headers=warehouse)
    assert too_early.status_code == 409
    assert too_early.json()["current"] == "pending"
    assert (await client.post(url, json={"status": "bogus"}, headers=warehouse)).status_code == 422

    paid = await client.post(url, json={"status": "paid"}, headers=warehouse)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    again = await client.post(url, json={"status": "paid"}, headers=warehouse)
    assert again.status_code == 200 and again.json()["version"] == paid.json()["version"]
    shipped = await client.post(url, json={"status": "shipped"}, headers=admin)
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
    assert shipped.json()["version"] == 3

    for headers in (auth, admin):
        cancel = await client.delete(f"/orders/{oid}", headers=headers)
        assert cancel.status_code == 409
        assert cancel.headers["content-type"] == "application/problem+json"
    assert (await product_row(stores, product))["stock"] == 3
    assert (
        await client.post("/orders/999999/transitions", json={"status": "paid"}, headers=warehouse)
    ).status_code == 404


async def test_admin_cancels_a_paid_order(client: httpx.AsyncClient, stores: Stores) -> None:
    product = await insert_product(stores, stock=5)
    auth = await bearer(stores, "customer")
    oid = (await place(client, auth, [{"product_id": product, "quantity": 5}])).json()["id"]
    warehouse = await bearer(stores, "warehouse")
    await client.post(f"/orders/{oid}/transitions", json={"status": "paid"}, headers=warehouse)
    cancel = await client.delete(f"/orders/{oid}", headers=await bearer(stores, "admin"))
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    assert (await product_row(stores, product))["stock"] == 5


async def test_cached_product_reads_see_stock_moved_by_orders(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    """Read-your-writes through the product cache: no relay runs in this test, so only
    the request path's invalidation can make the second read fresh."""
    product = await insert_product(stores, stock=5)
    auth = await bearer(stores, "customer")
    for _ in range(2):  # the second read is served from Redis
        cached = await client.get(f"/products/{product}")
        assert cached.status_code == 200
        assert (cached.json()["stock"], cached.json()["version"]) == (5, 1)

    order = (await place(client, auth, [{"product_id": product, "quantity": 2}])).json()
    after_order = (await client.get(f"/products/{product}")).json()
    assert (after_order["stock"], after_order["version"]) == (3, 2)

    assert (await client.delete(f"/orders/{order['id']}", headers=auth)).status_code == 200
    after_cancel = (await client.get(f"/products/{product}")).json()
    assert (after_cancel["stock"], after_cancel["version"]) == (5, 3)


async def test_openapi_documents_the_orders_api(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"/orders", "/orders/{order_id}", "/orders/{order_id}/transitions"} <= set(
        schema["paths"]
    )
    post = schema["paths"]["/orders"]["post"]
    key_header = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
    assert key_header["required"] is True
    assert set(schema["paths"]["/orders/{order_id}"]) == {"get", "delete"}
