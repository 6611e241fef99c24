"""Product images against real Postgres and MinIO: upload, validation, metadata stripping,
dedup, URLs, delete, direct uploads, concurrency, store outages."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from PIL import ExifTags, Image
from prometheus_client import REGISTRY

from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from images import content, gc, repository, service
from tests.support.auth import bearer
from tests.support.images import (
    image_rows,
    insert_product,
    make_image,
    object_keys,
    read_object,
    well_formed_but_undecodable_jpeg,
)


@asynccontextmanager
async def app_client(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same test schema and bucket, with some settings changed."""
    application = create_app(settings.model_copy(update=overrides))
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://polyshop.test") as c:
            yield c


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    product_id: int,
    data: bytes,
    *,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    **fields: str,
) -> httpx.Response:
    return await client.post(
        f"/products/{product_id}/images",
        files={"file": (filename, data, content_type)},
        data=fields,
        headers=headers,
    )


@pytest.fixture
async def admin(stores: Stores) -> dict[str, str]:
    return await bearer(stores, "admin")


@pytest.fixture
async def product(stores: Stores) -> int:
    return await insert_product(stores)


@pytest.fixture(params=["inline", "worker"])
async def mode_client(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with renditions made inline, and with them (and a JPEG's pixel decode)
    left to the worker: every rejection must happen in the request either way."""
    async with app_client(settings, image_renditions=request.param) as client:
        yield client


async def fetch_url(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as raw:
        return await raw.get(url)


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "content_type"),
    [("JPEG", "RGB", "image/jpeg"), ("PNG", "RGBA", "image/png"), ("WEBP", "RGB", "image/webp")],
)
async def test_each_format_round_trips(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: dict[str, str],
    product: int,
    fmt: str,
    mode: str,
    content_type: str,
) -> None:
    color = (10, 120, 200, 255)[: len(mode)]
    data = make_image(fmt, size=(900, 300), color=color, mode=mode)
    response = await upload(client, admin, product, data, alt_text="a chair", position="3")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == fmt.lower()
    assert body["content_type"] == content_type
    assert (body["width"], body["height"]) == (900, 300)
    assert body["alt_text"] == "a chair"
    assert body["position"] == 3
    assert [(r["width"], r["actual_width"], r["height"]) for r in body["renditions"]] == [
        (200, 200, 67),
        (800, 800, 267),
    ]

    original = await fetch_url(body["url"])
    assert original.status_code == 200
    assert original.headers["content-type"] == content_type
    assert original.headers["cache-control"] == "public, max-age=31536000, immutable"
    with Image.open(io.BytesIO(original.content)) as decoded:
        assert decoded.format == fmt
        assert decoded.size == (900, 300)
        assert decoded.mode == mode
    for rendition in body["renditions"]:
        got = await fetch_url(rendition["url"])
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/webp"
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        with Image.open(io.BytesIO(got.content)) as decoded:
            assert decoded.format == "WEBP"
            assert decoded.width == rendition["actual_width"]

    listed = await client.get(f"/products/{product}/images")  # public: no key
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == [body["id"]]
    assert await image_rows(stores) == 1
    assert len(await object_keys(stores)) == 3


async def test_small_image_is_not_upscaled(
    client: httpx.AsyncClient, admin: dict[str, str], product: int
) -> None:
    response = await upload(client, admin, product, make_image("PNG", size=(120, 60)))
    assert response.status_code == 201, response.text
    assert [(r["width"], r["actual_width"]) for r in response.json()["renditions"]] == [
        (200, 120),
        (800, 120),
    ]


async def test_type_comes_from_the_bytes_not_the_name(
    client: httpx.AsyncClient, admin: dict[str, str], product: int
) -> None:
    """PNG bytes named .jpg with image/jpeg are a PNG: the bytes decide."""
    response = await upload(client, admin, product, make_image("PNG"), filename="x.jpg")
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "png"
    assert response.json()["content_type"] == "image/png"


# --- rejections: right status, nothing stored --------------------------------------------


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's calling card)."""
    raw = bytearray(make_image("PNG", size=(1, 1), color=(0, 0, 0)))
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(raw[ihdr : ihdr + 17]))
    raw[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(raw)


def _real_png_bomb() -> bytes:
    """6000x6000 black pixels: 36 MB decoded, about 40 kB compressed."""
    out = io.BytesIO()
    Image.new("L", (6000, 6000)).save(out, "PNG", compress_level=9)
    return out.getvalue()


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims another size (checked before decoding)."""
    raw = bytearray(make_image("JPEG"))
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


def _jpeg_with_a_bad_huffman_table() -> bytes:
    """Well-formed segments, but the first Huffman table's code lengths overflow: more
    1-bit codes than a prefix code can have (libjpeg: "Bogus Huffman table")."""
    raw = bytearray(make_image("JPEG"))
    dht = raw.index(b"\xff\xc4")
    raw[dht + 5] = 3  # three codes of length 1
    return bytes(raw)


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
)
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


@pytest.mark.parametrize(
    ("case", "data", "content_type", "status", "field"),
    [
        ("html posing as png", HTML, "image/png", 415, None),
        ("svg posing as png", SVG, "image/png", 415, None),
        ("svg as svg", SVG, "image/svg+xml", 415, None),
        ("plain text", b"hello, world" * 10, "image/jpeg", 415, None),
        ("gif", b"GIF89a" + b"\x00" * 40, "image/gif", 415, None),
        ("zero bytes", b"", "image/jpeg", 422, "file"),
        ("corrupt png", b"\x89PNG\r\n\x1a\n" + b"\x13" * 300, "image/png", 422, "file"),
        ("corrupt jpeg", b"\xff\xd8\xff\xe0" + b"\x00garbage" * 40, "image/jpeg", 422, "file"),
        ("bad huffman table", _jpeg_with_a_bad_huffman_table(), "image/jpeg", 422, "file"),
        ("bomb header", _png_declaring(20000, 20000), "image/png", 422, "file"),
        ("jpeg bomb header", _jpeg_declaring(30000, 30000), "image/jpeg", 422, "file"),
    ],
)
async def test_rejections_store_nothing(
    mode_client: httpx.AsyncClient,
    stores: Stores,
    admin: dict[str, str],
    product: int,
    case: str,
    data: bytes,
    content_type: str,
    status: int,
    field: str | None,
) -> None:
    response = await upload(mode_client, admin, product, data, content_type=content_type)
    assert response.status_code == status, (case, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    if field:
        assert response.json()["errors"][0]["field"] == field
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
async def test_truncated_images_are_422(
    mode_client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int, fmt: str
) -> None:
    whole = make_image(fmt, size=(300, 200), quality=95) if fmt != "PNG" else make_image(fmt)
    response = await upload(mode_client, admin, product, whole[: len(whole) // 2])
    assert response.status_code == 422, response.text
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_real_decompression_bomb_is_422(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    bomb = _real_png_bomb()
    assert len(bomb) < 200_000
    async with app_client(settings, image_max_pixels=10_000_000) as client:
        response = await upload(client, admin, product, bomb, content_type="image/png")
    assert response.status_code == 422, response.text
    assert "pixels" in response.json()["detail"]
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_oversized_is_413_while_streaming_and_by_content_length(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    limit = 20_000
    async with app_client(settings, image_max_bytes=limit) as client:
        # Just over the limit: the declared length passes the early check, the stream does not.
        just_over = await upload(client, admin, product, b"\xff\xd8\xff" + b"\0" * limit)
        # Far over: refused from Content-Length alone.
        far_over = await upload(client, admin, product, b"\xff\xd8\xff" + b"\0" * (limit * 10))
    assert just_over.status_code == 413, just_over.text
    assert far_over.status_code == 413, far_over.text
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_missing_field_and_wrong_body_type(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    no_file = await client.post(
        f"/products/{product}/images", files={"alt_text": (None, "x")}, headers=admin
    )
    assert no_file.status_code == 422, no_file.text
    assert no_file.json()["errors"][0]["field"] == "file"
    as_json = await client.post(f"/products/{product}/images", json={"file": "x"}, headers=admin)
    assert as_json.status_code == 415
    bad_position = await upload(client, admin, product, make_image(), position="first")
    assert bad_position.status_code == 422
    assert bad_position.json()["errors"][0]["field"] == "position"
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_unknown_or_deleted_product_is_404(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    deleted = await insert_product(stores, deleted=True)
    for product_id in (999_999, deleted):
        response = await upload(client, admin, product_id, make_image())
        assert response.status_code == 404, response.text
        assert (await client.get(f"/products/{product_id}/images")).status_code == 404
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_writes_need_an_admin_and_reads_are_public(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    customer = await bearer(stores, "customer")
    assert (await upload(client, {}, product, make_image())).status_code == 401
    assert (await upload(client, customer, product, make_image())).status_code == 403
    created = await upload(client, admin, product, make_image())
    assert created.status_code == 201
    image_id = created.json()["id"]
    path = f"/products/{product}/images/{image_id}"
    assert (await client.delete(path, headers=customer)).status_code == 403
    assert (await client.post(f"/products/{product}/images/uploads")).status_code == 401
    listed = await client.get(f"/products/{product}/images")
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 1


# --- metadata stripping ------------------------------------------------------------------


def _jpeg_with_gps(orientation: int = 6) -> bytes:
    """6: rotate 90 degrees clockwise to display (re-encoded); 1: upright (stripped)."""
    image = Image.new("RGB", (64, 48), (30, 160, 60))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SpyCam"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


@pytest.mark.parametrize(("orientation", "size"), [(6, (48, 64)), (1, (64, 48))])
async def test_gps_exif_never_leaves_the_server(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: dict[str, str],
    product: int,
    orientation: int,
    size: tuple[int, int],
) -> None:
    source = _jpeg_with_gps(orientation)
    with Image.open(io.BytesIO(source)) as check:  # the test image really carries GPS
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    response = await upload(client, admin, product, source)
    assert response.status_code == 201, response.text
    # orientation applied: a rotated photo is stored upright (width and height swap)
    assert (response.json()["width"], response.json()["height"]) == size
    keys = await object_keys(stores)
    assert len(keys) == 3
    for key in keys:
        data, _ = await read_object(stores, key)
        assert b"Exif" not in data
        assert b"SpyCam" not in data
        with Image.open(io.BytesIO(data)) as stored:
            assert len(stored.getexif()) == 0
            assert not stored.getexif().get_ifd(ExifTags.IFD.GPSInfo)
            assert "exif" not in stored.info
            assert "xmp" not in stored.info


# --- dedup, delete, primary image --------------------------------------------------------


async def test_duplicate_uploads_share_one_blob(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    other = await insert_product(stores)
    data = make_image("JPEG", color=(1, 2, 3))
    first = await upload(client, admin, product, data)
    again = await upload(client, admin, product, data)
    elsewhere = await upload(client, admin, other, data)
    assert (first.status_code, again.status_code, elsewhere.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert elsewhere.json()["sha256"] == first.json()["sha256"]
    assert await image_rows(stores) == 2
    assert len(await object_keys(stores)) == 3  # one original + two renditions, shared


async def test_delete_keeps_blobs_another_image_uses(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    other = await insert_product(stores)
    data = make_image("PNG", color=(9, 9, 9))
    mine = (await upload(client, admin, product, data)).json()
    theirs = (await upload(client, admin, other, data)).json()

    gone = await client.delete(f"/products/{product}/images/{mine['id']}", headers=admin)
    assert gone.status_code == 204
    assert len(await object_keys(stores)) == 3  # still used by the other product
    again = await client.delete(f"/products/{product}/images/{mine['id']}", headers=admin)
    assert again.status_code == 404

    last = await client.delete(f"/products/{other}/images/{theirs['id']}", headers=admin)
    assert last.status_code == 204
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_primary_image_and_product_deletion_helpers(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    second = await upload(client, admin, product, make_image(color=(5, 5, 5)), position="2")
    first = await upload(client, admin, product, make_image(color=(6, 6, 6)), position="1")
    assert (second.status_code, first.status_code) == (201, 201)
    async with stores.pg.connection() as conn:
        primary = await service.primary_image(stores, conn, product)
        assert primary is not None
        assert primary["id"] == first.json()["id"]
        assert primary["url"].startswith("http")
        assert await service.primary_image(stores, conn, await insert_product(stores)) is None

        async with conn.transaction():  # what DELETE /products/{id} does
            shas = await service.delete_product_images(conn, product)
    assert len(shas) == 2
    assert await image_rows(stores) == 0
    assert len(await object_keys(stores)) == 6
    await service.release_blobs(stores, shas)
    assert await object_keys(stores) == []


async def _version_and_events(stores: Stores, product_id: int) -> tuple[int, list[int]]:
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT version FROM products WHERE id = %s", (product_id,))
        row = await cur.fetchone()
        assert row is not None
        cur = await conn.execute(
            "SELECT version FROM outbox WHERE aggregate = 'product' AND aggregate_id = %s"
            " AND event_type = 'product.upserted' ORDER BY id",
            (product_id,),
        )
        return int(row["version"]), [int(r["version"]) for r in await cur.fetchall()]


async def test_image_changes_bump_the_product_version_through_the_outbox(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    """The product's JSON shows its primary image, so adding or deleting an image is a
    product change: new version, outbox event, and no stale copy from the cache."""
    cached = await client.get(f"/products/{product}")
    assert cached.status_code == 200, cached.text
    assert cached.json()["version"] == 1
    assert await _version_and_events(stores, product) == (1, [])

    data = make_image(color=(77, 1, 1))
    created = await upload(client, admin, product, data)
    assert created.status_code == 201
    assert await _version_and_events(stores, product) == (2, [2])
    assert (await client.get(f"/products/{product}")).json()["version"] == 2

    assert (await upload(client, admin, product, data)).status_code == 200  # no change
    assert await _version_and_events(stores, product) == (2, [2])

    path = f"/products/{product}/images/{created.json()['id']}"
    assert (await client.delete(path, headers=admin)).status_code == 204
    assert await _version_and_events(stores, product) == (3, [2, 3])
    assert (await client.get(f"/products/{product}")).json()["version"] == 3


async def test_presigned_urls_are_stable_within_a_window(
    client: httpx.AsyncClient, admin: dict[str, str], product: int
) -> None:
    assert (await upload(client, admin, product, make_image())).status_code == 201
    one = (await client.get(f"/products/{product}/images")).json()["items"][0]
    two = (await client.get(f"/products/{product}/images")).json()["items"][0]
    assert "X-Amz-Signature" in one["url"]
    assert one["urls_expire_at"] is not None
    # Same signing window, same URL (unless the window turned between the two calls).
    assert one["url"] == two["url"] or one["urls_expire_at"] != two["urls_expire_at"]


async def test_public_url_mode_serves_originals_and_renditions_anonymously(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    async with app_client(settings, image_url_mode="public") as client:
        created = await upload(client, admin, product, make_image("WEBP"))
        assert created.status_code == 201, created.text
        start = await client.post(f"/products/{product}/images/uploads", headers=admin)
    body = created.json()
    assert body["urls_expire_at"] is None
    assert "X-Amz-Signature" not in body["url"]
    for url in [body["url"], *(r["url"] for r in body["renditions"])]:
        assert (await fetch_url(url)).status_code == 200
    # incoming/ stays private even with a public bucket
    async with httpx.AsyncClient() as raw:
        put = await raw.put(start.json()["url"], content=make_image())
        assert put.status_code == 200
        incoming = start.json()["url"].split("?", 1)[0]
        assert (await raw.get(incoming)).status_code == 403


# --- direct uploads ----------------------------------------------------------------------


async def test_direct_upload_is_verified_then_stored(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    start = await client.post(
        f"/products/{product}/images/uploads", json={"alt_text": "big one"}, headers=admin
    )
    assert start.status_code == 201, start.text
    ticket = start.json()
    early = await client.post(ticket["complete_url"], headers=admin)
    assert early.status_code == 409  # nothing PUT yet

    async with httpx.AsyncClient() as raw:
        put = await raw.put(ticket["url"], content=_jpeg_with_gps())
    assert put.status_code == 200, put.text
    assert any(k.startswith("incoming/") for k in await object_keys(stores))

    done = await client.post(ticket["complete_url"], headers=admin)
    assert done.status_code == 201, done.text
    assert done.json()["alt_text"] == "big one"
    assert (done.json()["width"], done.json()["height"]) == (48, 64)
    keys = await object_keys(stores)
    assert not any(k.startswith("incoming/") for k in keys)
    assert len(keys) == 3
    assert await image_rows(stores) == 1
    assert (await client.post(ticket["complete_url"], headers=admin)).status_code == 404


async def test_concurrent_completions_beyond_the_pool_size_all_succeed(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    """pool max + 2 completions at once: each stores its image on the connection that
    holds its upload row, so none waits for a second one (before, every completion held
    one connection and waited for another: with the pool exhausted they all failed)."""
    pool_max = 2
    async with app_client(settings, database_pool_max=pool_max) as client:
        tickets = []
        for n in range(pool_max + 2):
            start = await client.post(f"/products/{product}/images/uploads", headers=admin)
            assert start.status_code == 201, start.text
            ticket = start.json()
            async with httpx.AsyncClient() as raw:
                put = await raw.put(ticket["url"], content=make_image(color=(n * 40, 90, 30)))
            assert put.status_code == 200, put.text
            tickets.append(ticket)
        done = await asyncio.gather(
            *(client.post(t["complete_url"], headers=admin) for t in tickets)
        )
    assert [r.status_code for r in done] == [201] * len(tickets), [r.text for r in done]
    assert await image_rows(stores) == len(tickets)


@pytest.mark.parametrize(
    ("data", "status"),
    [(HTML, 415), (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 422), (b"", 422)],
)
async def test_failed_direct_upload_verification_deletes_the_object(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: dict[str, str],
    product: int,
    data: bytes,
    status: int,
) -> None:
    ticket = (await client.post(f"/products/{product}/images/uploads", headers=admin)).json()
    async with httpx.AsyncClient() as raw:
        assert (await raw.put(ticket["url"], content=data)).status_code == 200
    done = await client.post(ticket["complete_url"], headers=admin)
    assert done.status_code == status, done.text
    assert await object_keys(stores) == []
    assert await image_rows(stores) == 0
    assert (await client.post(ticket["complete_url"], headers=admin)).status_code == 404


async def test_direct_upload_over_its_limit_is_413_and_deleted(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    async with app_client(settings, image_direct_max_bytes=10_000) as client:
        ticket = (await client.post(f"/products/{product}/images/uploads", headers=admin)).json()
        assert ticket["max_bytes"] == 10_000
        async with httpx.AsyncClient() as raw:
            big = make_image("PNG", size=(300, 300), color=(1, 2, 3))
            big += b"\0" * 10_000  # trailing bytes after IEND
            assert (await raw.put(ticket["url"], content=big)).status_code == 200
        done = await client.post(ticket["complete_url"], headers=admin)
    assert done.status_code == 413, done.text
    assert await object_keys(stores) == []


async def test_failure_after_the_puts_leaves_no_row_and_no_blob(
    stores: Stores, product: int
) -> None:
    """The row insert fails after the blobs were put (alt text over the column's CHECK,
    bypassing the route's own validation): the blobs are deleted again."""
    from psycopg.errors import CheckViolation

    from images.processing.process import process

    processed = process(io.BytesIO(make_image("PNG")), max_pixels=10**6)
    with pytest.raises(CheckViolation):
        await content.save_image(
            stores.pg,
            service.image_blobs(stores),
            product,
            processed,
            stores.settings.image_rendition_widths,
            alt_text="x" * 2000,
        )
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_the_product_check_inside_the_transaction_refuses_deleted_products(
    stores: Stores, product: int
) -> None:
    from images.processing.process import process

    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE products SET deleted_at = now() WHERE id = %s", (product,))
    processed = process(io.BytesIO(make_image("PNG")), max_pixels=10**6)
    with pytest.raises(repository.ProductNotFound):
        await content.save_image(
            stores.pg, service.image_blobs(stores), product, processed, (200, 800)
        )
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


async def test_multipart_direct_upload_is_assembled_verified_and_stored(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    start = await client.post(
        f"/products/{product}/images/uploads", json={"parts": 2}, headers=admin
    )
    assert start.status_code == 201, start.text
    ticket = start.json()
    assert ticket["url"] is None
    assert len(ticket["part_urls"]) == 2
    # S3 wants every part but the last >= 5 MiB: a real JPEG followed by padding (bytes
    # after the end-of-image marker are cut off when the image is stored).
    data = _jpeg_with_gps(orientation=1) + b"\0" * (ticket["min_part_bytes"] + 1000)
    cut = ticket["min_part_bytes"]
    etags = []
    async with httpx.AsyncClient(timeout=60) as raw:
        for url, part in zip(ticket["part_urls"], (data[:cut], data[cut:]), strict=True):
            put = await raw.put(url, content=part)
            assert put.status_code == 200, put.text
            etags.append(put.headers["etag"])

    no_parts = await client.post(ticket["complete_url"], headers=admin)
    assert no_parts.status_code == 422
    assert no_parts.json()["errors"][0]["field"] == "parts"
    wrong = await client.post(
        ticket["complete_url"],
        json={"parts": [{"part_number": 1, "etag": etags[0]}, {"part_number": 2, "etag": "x"}]},
        headers=admin,
    )
    assert wrong.status_code == 422, wrong.text

    parts = [{"part_number": n, "etag": e} for n, e in enumerate(etags, start=1)]
    done = await client.post(ticket["complete_url"], json={"parts": parts}, headers=admin)
    assert done.status_code == 201, done.text
    assert (done.json()["width"], done.json()["height"]) == (64, 48)
    assert done.json()["bytes"] < 10_000  # padding and metadata gone
    keys = await object_keys(stores)
    assert not any(k.startswith("incoming/") for k in keys)
    assert len(keys) == 3
    stored, _ = await read_object(stores, done.json()["url"].split("?")[0].split("/", 4)[-1])
    assert b"SpyCam" not in stored


# --- garbage collection ------------------------------------------------------------------


async def test_gc_removes_orphans_and_nothing_else(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    from datetime import UTC, datetime, timedelta

    kept = await upload(client, admin, product, make_image(color=(44, 44, 44)))
    assert kept.status_code == 201
    live = (await client.post(f"/products/{product}/images/uploads", headers=admin)).json()
    dead = (await client.post(f"/products/{product}/images/uploads", headers=admin)).json()
    async with httpx.AsyncClient() as raw:
        for ticket in (live, dead):
            assert (await raw.put(ticket["url"], content=b"pending")).status_code == 200
    async with stores.pg.connection() as conn:  # the second upload's ticket has expired
        await conn.execute(
            "UPDATE product_image_uploads SET expires_at = now() - interval '1 minute'"
            " WHERE id = %s",
            (dead["upload_id"],),
        )

    blobs = service.image_blobs(stores)
    orphan = "ab" * 32  # a failed upload's leftovers: blobs, no row
    for key in (f"images/sha256/{orphan}.jpg", f"renditions/{orphan}/200.webp"):
        await blobs.put(key, b"leftover", "image/jpeg")
    await blobs.put("incoming/no-such-upload", b"stray", "application/octet-stream")
    before = await object_keys(stores)
    assert len(before) == 3 + 2 + 2 + 1

    now = datetime.now(UTC)
    young = await gc.collect_orphans(stores.pg, blobs, grace_s=3600, now=now)
    assert young.deleted == []  # inside the grace period nothing goes
    assert await object_keys(stores) == before

    later = now + timedelta(seconds=5)
    report = await gc.collect_orphans(stores.pg, blobs, grace_s=0, now=later)
    expected = {
        f"images/sha256/{orphan}.jpg",
        f"renditions/{orphan}/200.webp",
        "incoming/no-such-upload",
        f"incoming/{dead['upload_id']}",
    }
    assert set(report.deleted) == expected
    assert await object_keys(stores) == sorted(set(before) - expected)
    listed = (await client.get(f"/products/{product}/images")).json()["items"]
    for url in [listed[0]["url"], *(r["url"] for r in listed[0]["renditions"])]:
        assert (await fetch_url(url)).status_code == 200


async def test_gc_worker_task_collects_and_stops(stores: Stores) -> None:
    import dataclasses

    from images.gc import run_image_gc

    blobs = service.image_blobs(stores)
    await blobs.ensure_bucket()
    orphan = "cd" * 32
    await blobs.put(f"images/sha256/{orphan}.png", b"leftover", "image/png")
    eager = dataclasses.replace(
        stores,
        settings=stores.settings.model_copy(
            update={"image_gc_grace_s": 0, "image_gc_interval_s": 0.2}
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_image_gc(eager, stop))
    try:
        async with asyncio.timeout(30):
            while await object_keys(stores):  # noqa: ASYNC110 (polls MinIO: no event)
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await object_keys(stores) == []
    assert task.done() and task.exception() is None


async def test_image_tasks_are_in_the_worker_plan(stores: Stores) -> None:
    from app.worker_wiring import build_worker

    assert {"image-gc", "image-renditions"} <= set(build_worker(stores).tasks)


# --- concurrency and outages -------------------------------------------------------------


async def test_twenty_concurrent_uploads_all_succeed(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str], product: int
) -> None:
    data = [make_image("JPEG", size=(320, 240), color=(i * 12, 100, 50)) for i in range(20)]
    same = make_image("PNG", color=(7, 7, 7))
    responses = await asyncio.gather(
        *(upload(client, admin, product, d) for d in data),
        *(upload(client, admin, product, same) for _ in range(3)),  # racing duplicates
    )
    assert [r.status_code for r in responses[:20]] == [201] * 20, [r.text for r in responses]
    assert sorted(r.status_code for r in responses[20:]) == [200, 200, 201]
    assert len({r.json()["id"] for r in responses[20:]}) == 1
    assert await image_rows(stores) == 21
    assert len(await object_keys(stores)) == 21 * 3


async def test_blob_store_down_is_503_and_nothing_is_written(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    async with app_client(settings, s3_endpoint="127.0.0.1:1") as client:
        response = await upload(client, admin, product, make_image())
        start = await client.post(f"/products/{product}/images/uploads", headers=admin)
        listed = await client.get(f"/products/{product}/images")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert response.json()["store"] == "blobs"
    assert start.status_code == 503
    assert listed.status_code == 200  # listing signs URLs locally: no blob-store call
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []


# --- deferred renditions -----------------------------------------------------------------


async def test_deferred_renditions_are_made_by_the_worker(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    from images.renditions import make_pending

    data = make_image("JPEG", size=(1000, 500), color=(3, 30, 90))
    async with app_client(settings, image_renditions="worker") as client:
        created = await upload(client, admin, product, data)
        assert created.status_code == 201, created.text
        assert created.json()["renditions_pending"] is True
        assert created.json()["renditions"] == []
        assert len(await object_keys(stores)) == 1  # the original only
        assert (await fetch_url(created.json()["url"])).status_code == 200

        version_before = (await _version_and_events(stores, product))[0]
        assert await make_pending(stores) == 1
        assert await make_pending(stores) == 0
        # the product's JSON changes (rendition URLs): one more version
        assert (await _version_and_events(stores, product))[0] == version_before + 1
        listed = (await client.get(f"/products/{product}/images")).json()["items"][0]
        assert listed["renditions_pending"] is False
        assert [(r["width"], r["actual_width"]) for r in listed["renditions"]] == [
            (200, 200),
            (800, 800),
        ]
        for rendition in listed["renditions"]:
            got = await fetch_url(rendition["url"])
            assert got.status_code == 200
            assert got.headers["content-type"] == "image/webp"
        assert len(await object_keys(stores)) == 3

        # the same content on another product reuses the finished renditions at once
        other = await insert_product(stores)
        again = await upload(client, admin, other, data)
        assert again.status_code == 201
        assert again.json()["renditions_pending"] is False
        assert len(again.json()["renditions"]) == 2
    assert len(await object_keys(stores)) == 3


async def test_deleting_a_pending_image_leaves_no_work_and_no_blobs(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    from images.renditions import make_pending

    async with app_client(settings, image_renditions="worker") as client:
        created = await upload(client, admin, product, make_image())
        image_id = created.json()["id"]
        deleted = await client.delete(f"/products/{product}/images/{image_id}", headers=admin)
        assert deleted.status_code == 204
    assert await make_pending(stores) == 0
    assert await object_keys(stores) == []


async def test_undecodable_jpeg_is_refused_inline_and_removed_by_the_worker_when_deferred(
    settings: Settings, stores: Stores, admin: dict[str, str], product: int
) -> None:
    """With renditions left to the worker, a JPEG is checked in the request up to its
    entropy-coded data and decoded by the worker; damage only a decode can find makes
    the worker remove the image (row, then blobs) and bump the product's version."""
    from images.renditions import make_pending

    damaged = well_formed_but_undecodable_jpeg()
    async with app_client(settings, image_renditions="inline") as client:
        refused = await upload(client, admin, product, damaged)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "file"
    assert await image_rows(stores) == 0
    assert await object_keys(stores) == []

    good = make_image("JPEG", size=(300, 200), color=(10, 200, 10))
    async with app_client(settings, image_renditions="worker") as client:
        accepted = await upload(client, admin, product, damaged)
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["renditions_pending"] is True
        kept = await upload(client, admin, product, good)
        assert kept.status_code == 201
        assert len(await object_keys(stores)) == 2
        version_before = (await _version_and_events(stores, product))[0]

        assert await make_pending(stores) == 2  # one removed, one made
        listed = (await client.get(f"/products/{product}/images")).json()["items"]
        assert [i["id"] for i in listed] == [kept.json()["id"]]
        assert listed[0]["renditions_pending"] is False
        keys = await object_keys(stores)
        assert accepted.json()["sha256"] not in " ".join(keys)
        assert len(keys) == 3  # the good original and its two renditions
        # each content changed the product's JSON once (one removed, one finished)
        assert (await _version_and_events(stores, product))[0] == version_before + 2
        assert await make_pending(stores) == 0


def _uploaded_bytes() -> float:
    return REGISTRY.get_sample_value("polyshop_image_upload_bytes_total") or 0.0


async def test_accepted_upload_bytes_are_counted(
    client: httpx.AsyncClient, admin: dict[str, str], product: int
) -> None:
    """polyshop_image_upload_bytes_total (the Grafana dashboard's upload panel): the
    bytes received of each accepted upload, multipart and direct; refusals add nothing."""
    data = make_image("PNG", size=(40, 30), color=(1, 2, 3), mode="RGB")
    before = _uploaded_bytes()
    assert (await upload(client, admin, product, data)).status_code == 201
    assert _uploaded_bytes() == before + len(data)

    refused = await upload(client, admin, product, HTML, filename="x.html")
    assert refused.status_code == 415
    assert _uploaded_bytes() == before + len(data)

    ticket = (
        await client.post(f"/products/{product}/images/uploads", json={}, headers=admin)
    ).json()
    direct = _jpeg_with_gps()
    async with httpx.AsyncClient() as raw:
        assert (await raw.put(ticket["url"], content=direct)).status_code == 200
    assert (await client.post(ticket["complete_url"], headers=admin)).status_code == 201
    assert _uploaded_bytes() == before + len(data) + len(direct)
