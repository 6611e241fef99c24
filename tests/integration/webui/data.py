"""Shop data for the browser tests, written through the domain functions the app uses."""

from __future__ import annotations

import io
import uuid
from typing import Any

from PIL import Image

from app.stores import Stores
from images import content
from images.blobs import ImageBlobs
from images.processing.process import process
from search.reindex import reindex
from storage import api_keys, products


async def new_key(stores: Stores, role: api_keys.Role) -> tuple[str, int | None]:
    """A fresh API key of `role` (a customer key gets a new customer) and its customer id."""
    customer_id = None
    async with stores.pg.connection() as conn:
        if role == "customer":
            cur = await conn.execute(
                "INSERT INTO customers (email, name) VALUES (%s, %s) RETURNING id",
                (f"{uuid.uuid4().hex[:12]}@example.test", "Web Shopper"),
            )
            row = await cur.fetchone()
            assert row is not None
            customer_id = int(row["id"])
        key = await api_keys.create_key(
            conn,
            pepper=stores.settings.api_key_pepper.get_secret_value(),
            role=role,
            customer_id=customer_id,
        )
    return key, customer_id


async def product(stores: Stores, **fields: Any) -> products.Product:
    row: dict[str, Any] = {
        "sku": f"W-{uuid.uuid4().hex[:8]}",
        "name": "Thing",
        "description": "A thing.",
        "brand": "Acme",
        "category": "Home/Lighting",
        "price_minor": 2000,
        "currency": "USD",
        "stock": 5,
        "attributes": {},
        "status": "active",
    }
    row.update(fields)
    async with stores.pg.connection() as conn, conn.transaction():
        return await products.create(conn, row)


def png(color: tuple[int, int, int], size: tuple[int, int] = (320, 320)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


async def image(
    stores: Stores, product_id: int, color: tuple[int, int, int], alt: str = ""
) -> None:
    """An image through the upload's own processing and storing functions."""
    s = stores.settings
    processed = process(
        io.BytesIO(png(color)),
        max_pixels=s.image_max_pixels,
        rendition_widths=s.image_rendition_widths,
        defer_decode=False,
    )
    await content.save_image(
        stores.pg,
        ImageBlobs(stores.blobs, s.s3_bucket),
        product_id,
        processed,
        s.image_rendition_widths,
        alt_text=alt,
        position=None,
        timings={},
    )


async def index(stores: Stores) -> None:
    await reindex(stores.pg, stores.search, stores.settings.search_index_prefix)
    await stores.search.refresh(f"{stores.settings.search_index_prefix}-products")
