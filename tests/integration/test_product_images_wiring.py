"""Product JSON carries its primary image; deleting a product removes its images."""

from __future__ import annotations

import httpx

from app.stores import Stores
from tests.support.auth import bearer
from tests.support.images import image_rows, insert_product, make_image, object_keys


async def _upload(
    client: httpx.AsyncClient, admin: dict[str, str], product_id: int, data: bytes, position: int
) -> dict[str, object]:
    response = await client.post(
        f"/products/{product_id}/images",
        headers=admin,
        files={"file": ("photo.png", data, "image/png")},
        data={"position": str(position), "alt_text": f"view {position}"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_product_json_shows_primary_image_and_follows_changes(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    admin = await bearer(stores, "admin")
    product_id = await insert_product(stores)

    first = await client.get(f"/products/{product_id}")  # cached without an image
    assert first.json()["primary_image"] is None

    back = await _upload(client, admin, product_id, make_image("PNG", color=(1, 2, 3)), 5)
    front = await _upload(client, admin, product_id, make_image("PNG", color=(9, 9, 9)), 0)

    shown = (await client.get(f"/products/{product_id}")).json()["primary_image"]
    assert shown["id"] == front["id"]  # lowest position, and not the stale cached entry
    assert shown["url"].startswith("http")
    listed = await client.get("/products", params={"limit": 200})
    by_id = {p["id"]: p for p in listed.json()["items"]}
    assert by_id[product_id]["primary_image"]["id"] == front["id"]

    removed = await client.delete(f"/products/{product_id}/images/{front['id']}", headers=admin)
    assert removed.status_code == 204
    shown = (await client.get(f"/products/{product_id}")).json()["primary_image"]
    assert shown["id"] == back["id"]


async def test_deleting_a_product_removes_its_images_and_blobs(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    admin = await bearer(stores, "admin")
    keep = await insert_product(stores)
    doomed = await insert_product(stores)
    shared = make_image("PNG", color=(40, 50, 60))
    await _upload(client, admin, keep, shared, 0)
    await _upload(client, admin, doomed, shared, 0)  # same bytes: one blob, two rows
    await _upload(client, admin, doomed, make_image("PNG", color=(70, 80, 90)), 1)
    keys_before = await object_keys(stores)

    response = await client.delete(f"/products/{doomed}", headers=admin)
    assert response.status_code == 204

    assert await image_rows(stores) == 1
    keys_after = await object_keys(stores)
    assert keys_after and set(keys_after) < set(keys_before)  # the shared blob stays
    kept = await client.get(f"/products/{keep}/images")
    assert kept.status_code == 200
    assert len(kept.json()["items"]) == 1
