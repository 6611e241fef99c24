"""Reordering a product's images: PATCH /products/{id}/images/{image_id} with a position,
in the request transaction, with the product's version bumped and its cache dropped."""

from __future__ import annotations

import httpx
import pytest

from app.stores import Stores
from tests.support.auth import bearer
from tests.support.images import insert_product, make_image


@pytest.fixture
async def admin(stores: Stores) -> dict[str, str]:
    return await bearer(stores, "admin")


async def _three_images(
    client: httpx.AsyncClient, admin: dict[str, str], product: int
) -> list[int]:
    ids = []
    for color in ((200, 0, 0), (0, 200, 0), (0, 0, 200)):
        answer = await client.post(
            f"/products/{product}/images",
            files={"file": ("p.png", make_image("PNG", color=color), "image/png")},
            headers=admin,
        )
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    return ids


async def _order(client: httpx.AsyncClient, product: int) -> list[tuple[int, int]]:
    listed = await client.get(f"/products/{product}/images")
    return [(i["id"], i["position"]) for i in listed.json()["items"]]


async def test_an_image_moves_and_the_others_keep_their_order(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    product = await insert_product(stores)
    a, b, c = await _three_images(client, admin, product)
    before = await client.get(f"/products/{product}")
    assert before.json()["primary_image"]["id"] == a  # cached from here on

    moved = await client.patch(
        f"/products/{product}/images/{c}", json={"position": 0}, headers=admin
    )
    assert moved.status_code == 200, moved.text
    assert [(i["id"], i["position"]) for i in moved.json()["items"]] == [(c, 0), (a, 1), (b, 2)]
    assert await _order(client, product) == [(c, 0), (a, 1), (b, 2)]
    after = await client.get(f"/products/{product}")
    assert after.json()["primary_image"]["id"] == c  # the cached JSON was dropped
    assert after.json()["version"] == before.json()["version"] + 1

    down = await client.patch(
        f"/products/{product}/images/{c}", json={"position": 2}, headers=admin
    )
    assert [i["id"] for i in down.json()["items"]] == [a, b, c]
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM outbox WHERE aggregate_id = %s AND event_type = %s",
            (product, "product.upserted"),
        )
        row = await cur.fetchone()
    assert row is not None and row["n"] >= 5  # 3 uploads and 2 moves, each an event


async def test_bad_positions_name_the_field(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    product = await insert_product(stores)
    a, b, c = await _three_images(client, admin, product)
    url = f"/products/{product}/images/{a}"
    for body in ({"position": 3}, {"position": -1}, {"position": "x"}, {}, {"position": 1.5}):
        answer = await client.patch(url, json=body, headers=admin)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in answer.json()["errors"]] == ["position"], body
    unknown = await client.patch(url, json={"position": 0, "alt": "x"}, headers=admin)
    assert unknown.status_code == 422
    assert await _order(client, product) == [(a, 0), (b, 1), (c, 2)]  # nothing moved


async def test_another_products_image_is_404_and_a_customer_is_403(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    product, other = await insert_product(stores), await insert_product(stores)
    a, _, _ = await _three_images(client, admin, product)
    elsewhere = await client.patch(
        f"/products/{other}/images/{a}", json={"position": 0}, headers=admin
    )
    assert elsewhere.status_code == 404
    customer = await bearer(stores, "customer")
    refused = await client.patch(
        f"/products/{product}/images/{a}", json={"position": 1}, headers=customer
    )
    assert refused.status_code == 403
    assert (await _order(client, product))[0][0] == a
