"""Really stops the dev stack's MinIO (guarantees 6 and 8): uploads answer 503 and leave
nothing behind, reads keep working, and uploads work again once MinIO is back."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.stores import Stores
from tests.support.auth import bearer
from tests.support.images import image_rows, insert_product, make_image, object_keys


@pytest.mark.stack_exclusive
async def test_fault_minio_stopped_mid_upload(client: httpx.AsyncClient, stores: Stores) -> None:
    import devstack

    admin = await bearer(stores, "admin")
    product = await insert_product(stores)

    async def post(data: bytes) -> httpx.Response:
        return await client.post(
            f"/products/{product}/images",
            files={"file": ("a.jpg", data, "image/jpeg")},
            headers=admin,
        )

    first = await post(make_image(color=(1, 1, 1)))
    assert first.status_code == 201, first.text
    await asyncio.to_thread(devstack.stop_service, "minio")
    try:
        down = await post(make_image(color=(2, 2, 2)))
        listed = await client.get(f"/products/{product}/images")
        ticket = await client.post(f"/products/{product}/images/uploads", headers=admin)
    finally:
        await asyncio.to_thread(devstack.start_service, "minio")
    assert down.status_code == 503, down.text
    assert down.json()["store"] == "blobs"
    assert down.headers["retry-after"]
    assert listed.status_code == 200  # URLs are signed locally
    assert len(listed.json()["items"]) == 1
    # the bucket was checked by the first upload and presigning is local
    assert ticket.status_code == 201

    assert await image_rows(stores) == 1
    assert len(await object_keys(stores)) == 3  # only the first image's blobs
    again = await post(make_image(color=(2, 2, 2)))
    assert again.status_code == 201, again.text
    assert await image_rows(stores) == 2
