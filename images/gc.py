"""Garbage collection of blobs no row uses (content blobs without an image row,
incoming objects without a live upload), and the worker task that runs it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from images.blobs import (
    INCOMING_PREFIX,
    ORIGINALS_PREFIX,
    RENDITIONS_PREFIX,
    ImageBlobs,
    sha_of_key,
)
from images.content import collect_unreferenced
from images.context import ImageStores, Pool
from images.metrics import IMAGE_GC_DELETED
from images.service import image_blobs
from kit.periodic import run_every

log = structlog.get_logger()


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    scanned: int = 0


async def collect_orphans(
    pool: Pool, blobs: ImageBlobs, *, grace_s: float, now: datetime
) -> GcReport:
    """Delete blobs that no row uses and that are older than the grace period:
    content blobs without an image row, and incoming objects without a live upload."""
    report = GcReport()
    cutoff = now - timedelta(seconds=grace_s)
    objects = await blobs.list(ORIGINALS_PREFIX) + await blobs.list(RENDITIONS_PREFIX)
    report.scanned += len(objects)
    old = {
        sha
        for o in objects
        if o.last_modified is not None and o.last_modified < cutoff
        for sha in [sha_of_key(o.key)]
        if sha
    }
    if old:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT sha256 FROM product_images WHERE sha256 = ANY(%s)", (sorted(old),)
            )
            used = {r["sha256"] for r in await cur.fetchall()}
        # collect_unreferenced checks again under the exclusive lock
        report.deleted += await collect_unreferenced(pool, blobs, old - used)

    incoming = await blobs.list(INCOMING_PREFIX)
    report.scanned += len(incoming)
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "DELETE FROM product_image_uploads WHERE expires_at < %s"
            " RETURNING object_key, s3_upload_id",
            (cutoff,),
        )
        expired_rows = await cur.fetchall()
        expired = {r["object_key"] for r in expired_rows}
        cur = await conn.execute("SELECT object_key FROM product_image_uploads")
        live = {r["object_key"] for r in await cur.fetchall()}
    for r in expired_rows:  # unfinished multipart uploads hold parts: drop them
        if r["s3_upload_id"]:
            await blobs.abort_multipart(r["object_key"], r["s3_upload_id"])
    stale = [
        o.key
        for o in incoming
        if o.key not in live
        and (o.key in expired or (o.last_modified is not None and o.last_modified < cutoff))
    ]
    if stale:
        await blobs.delete_many(stale)
        report.deleted += stale
    return report


# --- the worker task --------------------------------------------------------------------


async def collect_once(stores: ImageStores) -> GcReport:
    report = await collect_orphans(
        stores.pg,
        image_blobs(stores),
        grace_s=stores.settings.image_gc_grace_s,
        now=datetime.now(UTC),
    )
    IMAGE_GC_DELETED.inc(len(report.deleted))
    log.info("images.gc", scanned=report.scanned, deleted=len(report.deleted))
    return report


async def run_image_gc(stores: ImageStores, stop: asyncio.Event) -> None:
    """Every `image_gc_interval_s`, until shutdown. A store being down skips one round.
    Each round first makes sure the bucket (and policy) exist: the worker's start-up hook."""

    async def round_() -> GcReport:
        await image_blobs(stores).ensure_bucket()
        return await collect_once(stores)

    await run_every("image-gc", stores.settings.image_gc_interval_s, stop, round_)
