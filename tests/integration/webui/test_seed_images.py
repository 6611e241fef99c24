"""The sample catalog's pictures: drawn per category and colour, stored like uploads,
and shown by the storefront."""

from __future__ import annotations

import httpx

from app.stores import Stores
from images.blobs import ImageBlobs
from sampledata import images as seed_images
from tests.integration.webui import data


async def test_seeded_products_get_pictures_through_the_upload_path(
    stores: Stores, client: httpx.AsyncClient
) -> None:
    red = [
        await data.product(stores, category="Furniture/Chairs", attributes={"color": "red"})
        for _ in range(3)
    ]
    blue = await data.product(stores, category="Toys/Games", attributes={"color": "blue"})
    s = stores.settings
    blobs = ImageBlobs(stores.blobs, s.s3_bucket)
    await blobs.ensure_bucket()
    widths, max_pixels = s.image_rendition_widths, s.image_max_pixels
    for expected in (4, 0):  # a rerun finds nothing left without a picture
        made = await seed_images.attach(
            stores.pg, blobs, limit=10, rendition_widths=widths, max_pixels=max_pixels
        )
        assert made == expected
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT product_id, sha256, renditions FROM product_images ORDER BY product_id"
        )
        rows = await cur.fetchall()
    shas = {r["product_id"]: r["sha256"] for r in rows}
    # one drawing per category and colour: the red chairs share one blob
    assert len({shas[p.id] for p in red}) == 1 and shas[blue.id] != shas[red[0].id]
    assert all(len(r["renditions"]) == len(s.image_rendition_widths) for r in rows)
    originals = await blobs.list("images/sha256/")
    assert len(originals) == 2

    page = await client.get(f"/shop/p/{blue.id}")
    src = page.text.split('id="main-picture" src="', 1)[1].split('"', 1)[0]
    picture = await client.get(src)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/webp"
    assert "immutable" in picture.headers["cache-control"]
    # the media route serves only originals and renditions
    assert (await client.get("/web/media/incoming/x")).status_code == 404
