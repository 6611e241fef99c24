"""Helpers for the image tests: make images with Pillow, products by SQL, count what is stored."""

from __future__ import annotations

import asyncio
import io
import uuid

from PIL import Image

from app.stores import Stores


def make_image(
    fmt: str = "JPEG",
    size: tuple[int, int] = (64, 48),
    color: tuple[int, ...] = (200, 30, 30),
    mode: str = "RGB",
    **save: object,
) -> bytes:
    """A small image whose pixels depend on `color` (different colour, different bytes)."""
    image = Image.new(mode, size, color)
    for x in range(0, size[0], 8):  # some structure, so encoders do real work
        image.putpixel((x, x % size[1]), (0,) * len(image.getbands()))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


async def insert_product(stores: Stores, *, deleted: bool = False) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO products (sku, name, price_minor, deleted_at)"
            " VALUES (%s, 'Test product', 1999, CASE WHEN %s THEN now() END) RETURNING id",
            (f"IMG-{uuid.uuid4().hex[:10]}", deleted),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def image_rows(stores: Stores) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM product_images")
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def object_keys(stores: Stores) -> list[str]:
    """Every key in the test's bucket (none if the bucket does not exist yet)."""

    def keys() -> list[str]:
        bucket = stores.settings.s3_bucket
        if not stores.blobs.bucket_exists(bucket):
            return []
        return sorted(
            o.object_name
            for o in stores.blobs.list_objects(bucket, recursive=True)
            if o.object_name
        )

    return await asyncio.to_thread(keys)


async def read_object(stores: Stores, key: str) -> tuple[bytes, dict[str, str]]:
    def read() -> tuple[bytes, dict[str, str]]:
        response = stores.blobs.get_object(stores.settings.s3_bucket, key)
        try:
            return response.read(), {k.lower(): v for k, v in response.headers.items()}
        finally:
            response.close()
            response.release_conn()

    return await asyncio.to_thread(read)


def well_formed_but_undecodable_jpeg() -> bytes:
    """A JPEG whose every segment and table is well-formed (it passes the upload's
    checks) but whose entropy-coded data a decoder refuses. Found by trying damage to a
    progressive JPEG's scans with the real libraries, so it holds for the installed
    Pillow/libjpeg rather than for a byte offset someone once wrote down."""
    from images.processing.jpeg_strip import JpegStructureError, strip_jpeg_metadata

    noise = Image.merge(
        "RGB", [Image.effect_noise((96, 64), 40 + 10 * c).convert("L") for c in range(3)]
    )
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=90, progressive=True)
    source = out.getvalue()
    first_scan = source.index(b"\xff\xda")
    for start in range(first_scan + 20, len(source) - 200, 7):
        for length in (1, 3, 17, 60):
            damaged = source[:start] + source[start + length :]
            try:
                strip_jpeg_metadata(damaged)
            except JpegStructureError:
                continue
            try:
                with Image.open(io.BytesIO(damaged), formats=["JPEG"]) as image:
                    image.load()
            except Exception:
                return damaged
    raise AssertionError("no such damage found: the decoder or the checks changed")
