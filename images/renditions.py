"""Deferred renditions (setting `image_renditions = "worker"`): made by a worker task
from the stored original, shared by every pending row of the same content."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from typing import Any

import structlog
from psycopg.types.json import Jsonb

from images.blobs import (
    ImageBlobs,
    rendition_key,
)
from images.content import release_blobs
from images.context import ImageStores, Pool
from images.processing.process import (
    ImageRejected,
    renditions_of_stored,
)
from images.repository import touch_product
from images.service import image_blobs
from kit.periodic import run_every
from storage import locks

log = structlog.get_logger()


async def make_pending_renditions(
    pool: Pool, blobs: ImageBlobs, *, widths: Sequence[int], max_pixels: int, limit: int = 8
) -> int:
    """Make the renditions of up to `limit` pending contents. Returns how many were done
    (made, or removed because the original does not decode).

    Locking: a content is claimed with a try-advisory-lock (several workers share the
    work, and no image row stays locked while it renders, so deletes never wait for
    it). Rows are then locked in the order every writer uses - products first, then
    their images - so a concurrent product or image delete cannot deadlock with it."""
    done = 0
    undecodable: list[str] = []
    widths = sorted(set(widths))
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sha256, min(object_key) AS object_key, min(format) AS format"
            " FROM product_images WHERE renditions_pending"
            " GROUP BY sha256 ORDER BY min(id) LIMIT %s",
            (limit,),
        )
        candidates = await cur.fetchall()
    for candidate in candidates:
        sha = candidate["sha256"]
        async with pool.connection() as conn, conn.transaction():
            if not await locks.try_xact_lock(conn, "product-image-renditions:" + sha):
                continue  # another worker has it
            metas = await _render_and_put(
                blobs, sha, candidate["object_key"], candidate["format"], widths, max_pixels
            )
            cur = await conn.execute(
                "SELECT id FROM products WHERE id IN (SELECT product_id FROM product_images"
                " WHERE sha256 = %s AND renditions_pending) ORDER BY id FOR NO KEY UPDATE",
                (sha,),
            )
            product_ids = [r["id"] for r in await cur.fetchall()]
            if metas is None:
                # Its pixels do not decode (the upload checked everything up to the
                # entropy-coded data and left the decode to us): the image is unusable,
                # so it goes, as a rejected upload would have; the blobs follow below.
                await conn.execute(
                    "DELETE FROM product_images WHERE sha256 = %s AND renditions_pending", (sha,)
                )
                undecodable.append(sha)
                log.warning("images.removed_undecodable", sha256=sha, product_ids=product_ids)
            else:
                # Every pending row of this content gets them (same blobs).
                await conn.execute(
                    "UPDATE product_images SET renditions = %s, renditions_pending = false"
                    " WHERE sha256 = %s AND renditions_pending",
                    (Jsonb(metas), sha),
                )
            for product_id in product_ids:
                await touch_product(conn, product_id)
            done += 1
    if undecodable:
        await release_blobs(pool, blobs, undecodable)
    return done


async def _render_and_put(
    blobs: ImageBlobs, sha: str, key: str, fmt: str, widths: list[int], max_pixels: int
) -> list[dict[str, Any]] | None:
    """Decode the stored original, put its renditions, return their metadata; None if
    the original does not decode (only possible for a JPEG whose decode was deferred)."""
    with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as spool:
        await blobs.download_to(key, spool, limit=1 << 40)
        try:
            made = await asyncio.to_thread(
                renditions_of_stored,
                spool,
                fmt,  # type: ignore[arg-type]
                max_pixels=max_pixels,
                widths=widths,
            )
        except ImageRejected as exc:
            log.warning("images.rendition_failed", sha256=sha, error=str(exc))
            return None
    metas: list[dict[str, Any]] = []
    for width, rendition in zip(widths, made, strict=False):
        rkey = rendition_key(sha, width)
        await blobs.put(rkey, rendition.data, rendition.content_type)
        metas.append(
            {
                "key": rkey,
                "width": rendition.width,
                "height": rendition.height,
                "bytes": len(rendition.data),
            }
        )
    return metas


# --- the worker task --------------------------------------------------------------------


async def make_pending(stores: ImageStores, limit: int = 8) -> int:
    settings = stores.settings
    return await make_pending_renditions(
        stores.pg,
        image_blobs(stores),
        widths=settings.image_rendition_widths,
        max_pixels=settings.image_max_pixels,
        limit=limit,
    )


async def run_renditions(stores: ImageStores, stop: asyncio.Event) -> None:
    """Drain pending renditions; when there are none, look again every poll interval.
    Runs in either mode, so rows left pending by an earlier "worker" setting get done."""
    await run_every(
        "image-renditions",
        stores.settings.image_renditions_poll_s,
        stop,
        lambda: make_pending(stores),
        again_at_once=lambda done: done > 0,
    )
