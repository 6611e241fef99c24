"""Glue between the image routes and the store: processing in a thread, error mapping,
URLs, and the helpers the products API uses (primary image, product deletion).

Renditions are made inline by default (`image_renditions = "inline"`), in the request,
before anything is stored: the upload answers with every URL usable at once. That
costs most of the upload time (see docs/benchmarks.md). With `"worker"` the request
stores only the normalised original and a row marked `renditions_pending`; the worker
task `image-renditions` makes them shortly after, and until then clients use the
original's URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

import structlog

from images import content, repository
from images.blobs import ImageBlobs
from images.context import Conn, ImageStores
from images.metrics import IMAGE_UPLOAD_STAGE
from images.problems import UnsupportedMediaType
from images.processing.process import ImageRejected, ProcessedImage, process
from images.schemas import ImageOut, RenditionOut
from kit.problems import InvalidField, NotFound
from storage.errors import StoreUnavailable

log = structlog.get_logger()


def image_blobs(stores: ImageStores) -> ImageBlobs:
    settings = stores.settings
    return ImageBlobs(
        stores.blobs, settings.s3_bucket, public_read=settings.image_url_mode == "public"
    )


def rejected(exc: ImageRejected) -> Exception:
    """The HTTP problem for an unfit image. A decompression bomb is 422 (the request is
    small and well-formed; its content is unacceptable), not 413."""
    if exc.kind == "type":
        return UnsupportedMediaType(str(exc))
    return InvalidField("file", str(exc))


async def process_file(
    stores: ImageStores, fp: IO[bytes], *, direct: bool = False
) -> ProcessedImage:
    """Validate and normalise an upload. With renditions made by the worker, a JPEG kept
    as it is gets the header and table checks here and its pixel decode there (see
    storage/image_processing.py); a direct upload (`direct`) is always decoded here,
    since it has been sitting in the bucket unchecked."""
    settings = stores.settings
    deferred = settings.image_renditions == "worker"
    try:
        return await asyncio.to_thread(
            process,
            fp,
            max_pixels=settings.image_max_pixels,
            # deferred: the worker makes them from the stored original
            rendition_widths=() if deferred else settings.image_rendition_widths,
            # only where the worker will decode it: it makes renditions (if any widths)
            defer_decode=deferred and not direct and bool(settings.image_rendition_widths),
        )
    except ImageRejected as exc:
        raise rejected(exc) from exc


async def store_processed(
    stores: ImageStores,
    conn: Conn,
    product_id: int,
    processed: ProcessedImage,
    *,
    puts: content.ContentPuts,
    alt_text: str,
    position: int | None,
    timings: dict[str, float],
) -> repository.SavedImage:
    """Store the image in the caller's transaction (see content.save_image_in)."""
    try:
        return await content.save_image_in(
            conn,
            image_blobs(stores),
            product_id,
            processed,
            stores.settings.image_rendition_widths,
            puts=puts,
            alt_text=alt_text,
            position=position,
            timings=timings,
        )
    except repository.ProductNotFound as exc:
        raise NotFound(f"product {product_id} does not exist") from exc


def observe(timings: dict[str, float]) -> None:
    for stage, seconds in timings.items():
        IMAGE_UPLOAD_STAGE.labels(stage).observe(seconds)


async def ensure_product(conn: Conn, product_id: int) -> None:
    if not await repository.product_exists(conn, product_id):
        raise NotFound(f"product {product_id} does not exist")


# --- output ------------------------------------------------------------------------------


def _url(stores: ImageStores, blobs: ImageBlobs, key: str, now: datetime) -> str:
    settings = stores.settings
    if settings.image_url_mode == "public":
        base = settings.image_public_base_url.rstrip("/")
        if not base:
            scheme = "https" if settings.s3_secure else "http"
            base = f"{scheme}://{settings.s3_endpoint}/{settings.s3_bucket}"
        return f"{base}/{key}"
    return blobs.presigned_get(key, expiry_s=settings.image_url_expiry_s, now=now)


def _expires_at(stores: ImageStores, now: datetime) -> datetime | None:
    settings = stores.settings
    if settings.image_url_mode == "public":
        return None
    # URLs are signed at the start of a window of expiry/2 (see ImageBlobs.presigned_get)
    window = max(1, settings.image_url_expiry_s // 2)
    signed = int(now.timestamp()) // window * window
    return datetime.fromtimestamp(signed + settings.image_url_expiry_s, tz=UTC)


def image_out(
    stores: ImageStores, row: repository.ImageRow, now: datetime | None = None
) -> ImageOut:
    now = now or datetime.now(UTC)
    blobs = image_blobs(stores)
    widths = sorted(set(stores.settings.image_rendition_widths))
    renditions = [
        RenditionOut(
            width=_nominal_width(r["key"], widths),
            actual_width=r["width"],
            height=r["height"],
            bytes=r["bytes"],
            url=_url(stores, blobs, r["key"], now),
        )
        for r in row.renditions
    ]
    return ImageOut(
        id=row.id,
        product_id=row.product_id,
        format=row.format,
        content_type=row.content_type,
        width=row.width,
        height=row.height,
        bytes=row.bytes,
        sha256=row.sha256,
        position=row.position,
        alt_text=row.alt_text,
        created_at=row.created_at,
        url=_url(stores, blobs, row.object_key, now),
        renditions=renditions,
        renditions_pending=row.renditions_pending,
        urls_expire_at=_expires_at(stores, now),
    )


def _nominal_width(key: str, fallback: Sequence[int]) -> int:
    # renditions/<hex>/<width>.webp
    name = key.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(name) if name.isdigit() else (fallback[0] if fallback else 0)


# --- for the products API ----------------------------------------------------------------


async def primary_image(stores: ImageStores, conn: Conn, product_id: int) -> dict[str, Any] | None:
    """The product's primary image (lowest position) as JSON, or None. For product JSON:
    `product["primary_image"] = await primary_image(stores, conn, product.id)`.
    The URLs are signed locally (no MinIO request); a presigned URL stays the same for
    half its lifetime, so don't cache product JSON with it for longer than that."""
    found = await repository.primary_images(conn, [product_id])
    row = found.get(product_id)
    return image_out(stores, row).model_dump(mode="json") if row else None


async def primary_images(
    stores: ImageStores, conn: Conn, product_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Batch form of `primary_image` for product lists (one query)."""
    now = datetime.now(UTC)
    found = await repository.primary_images(conn, product_ids)
    return {pid: image_out(stores, row, now).model_dump(mode="json") for pid, row in found.items()}


async def delete_product_images(conn: Conn, product_id: int) -> list[str]:
    """Call inside the product-delete transaction; pass the result to `release_blobs`
    after the commit (optional: the GC job would collect the blobs anyway)."""
    return await repository.delete_product_images(conn, product_id)


async def release_blobs(stores: ImageStores, shas: Sequence[str]) -> None:
    await content.release_blobs(stores.pg, image_blobs(stores), shas)


async def discard(blobs: ImageBlobs, key: str) -> None:
    """Best-effort delete of an object nothing refers to; the GC job is the backstop."""
    try:
        await blobs.delete([key])
    except StoreUnavailable as exc:
        log.warning("images.discard_deferred_to_gc", key=key, error=exc.reason[:200])
