"""Product image metadata in Postgres, and the protocol that keeps rows and blobs honest.

Guarantee: a row never points at a missing blob, and a blob no row uses is collected.

How:
- Upload: the blobs are put first, the row is inserted after, in one transaction that
  holds a *shared* advisory lock on the content hash from before the puts until the
  commit, and locks the product row (after the puts) so a concurrent product delete
  waits or wins; the product's version is bumped with an outbox event (its JSON shows
  its primary image).
- Delete / GC: a blob is deleted only under the *exclusive* advisory lock of its
  content hash, after checking that no row uses it. So a GC run can never delete a blob
  between an upload's put and its commit.
- Dedup: an upload skips its puts only when, under its shared lock, a row with the same
  content and finished renditions exists (that row proves the blobs are there);
  otherwise it puts them (same key, same bytes: idempotent).
- A failed upload deletes what it put (best effort, under the same lock); when even that
  fails (MinIO gone), the GC job collects the orphans after a grace period.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from psycopg.types.json import Jsonb

from images.blobs import (
    ORIGINALS_PREFIX,
    RENDITIONS_PREFIX,
    ImageBlobs,
    original_key,
    rendition_key,
)
from images.context import Conn, Pool
from images.processing.process import (
    EXTENSIONS,
    ProcessedImage,
)
from images.repository import (
    COLUMNS,
    LOCK_PRODUCT,
    ImageRow,
    ProductNotFound,
    SavedImage,
    fetch_images,
    product_and_ready_renditions,
    touch_product,
)
from storage import locks
from storage.errors import StoreUnavailable

log = structlog.get_logger()


async def _lock_content(conn: Conn, sha256: str, *, shared: bool) -> None:
    await locks.xact_lock(conn, "product-image:" + sha256, shared=shared)


@dataclass
class ContentPuts:
    """The contents whose blobs a transaction put. If it rolls back, `undo` deletes them
    again (best effort, once the rollback released the content locks; the GC job is the
    backstop)."""

    shas: list[str] = field(default_factory=list)

    async def undo(self, pool: Pool, blobs: ImageBlobs) -> None:
        for sha in self.shas:
            await _cleanup_after_failure(pool, blobs, sha)


async def save_image(
    pool: Pool,
    blobs: ImageBlobs,
    product_id: int,
    processed: ProcessedImage,
    rendition_widths: Sequence[int],
    *,
    alt_text: str = "",
    position: int | None = None,
    timings: dict[str, float] | None = None,
) -> SavedImage:
    """`save_image_in` in a transaction of its own, cleaning up after a failure."""
    puts = ContentPuts()
    try:
        async with pool.connection() as conn, conn.transaction():
            return await save_image_in(
                conn,
                blobs,
                product_id,
                processed,
                rendition_widths,
                puts=puts,
                alt_text=alt_text,
                position=position,
                timings=timings,
            )
    except Exception:
        await puts.undo(pool, blobs)
        raise


async def save_image_in(
    conn: Conn,
    blobs: ImageBlobs,
    product_id: int,
    processed: ProcessedImage,
    rendition_widths: Sequence[int],
    *,
    puts: ContentPuts,
    alt_text: str = "",
    position: int | None = None,
    timings: dict[str, float] | None = None,
) -> SavedImage:
    """Store the blobs (unless the same content is already stored) and then the row, in
    the caller's transaction; the blobs it put are noted in `puts`, for the caller to
    undo if that transaction rolls back. `created` is False when this product already
    had this image. A processed image without renditions (deferred to the worker) gets
    a pending row. ProductNotFound if the product does not exist (checked before
    anything is put)."""
    sha = processed.sha256
    key = original_key(sha, EXTENSIONS[processed.format])
    # none made (deferred to the worker): an empty list and a pending row
    widths = sorted(set(rendition_widths)) if processed.renditions else []
    renditions: list[dict[str, Any]] = [
        {"key": rendition_key(sha, w), "width": r.width, "height": r.height, "bytes": len(r.data)}
        for w, r in zip(widths, processed.renditions, strict=True)
    ]
    await blobs.ensure_bucket()
    started = time.perf_counter()
    try:
        # The content lock first, in a statement of its own: the next one must read
        # what was committed before we held the lock (its snapshot starts after it).
        await _lock_content(conn, sha, shared=True)
        found, ready = await product_and_ready_renditions(conn, product_id, sha)
        if not found:
            raise ProductNotFound(product_id)
        pending = bool(rendition_widths) and not processed.renditions
        if ready is not None:
            # A row with this content and its renditions exists, and our shared lock
            # keeps GC away: its blobs are there, nothing to put.
            renditions, pending = ready, False
        else:
            puts.shas.append(sha)
            put_started = time.perf_counter()
            # Renditions first, original last: see images/blobs.py.
            for meta, rendition in zip(renditions, processed.renditions, strict=True):
                await blobs.put(meta["key"], rendition.data, rendition.content_type)
            # No HEAD first: a put of the same content-addressed bytes is idempotent,
            # and under our shared lock nothing can delete it before the commit.
            await blobs.put(key, processed.data, processed.content_type)
            if timings is not None:  # the blob store's share of "store"
                timings["put"] = time.perf_counter() - put_started
        # The product row is locked only now, for the short tail of the transaction:
        # a concurrent product delete waits for our commit (or we see it deleted and
        # refuse), and uploads to one product do not queue behind each other's puts.
        locked = await conn.execute(LOCK_PRODUCT, (product_id,))
        if await locked.fetchone() is None:
            raise ProductNotFound(product_id)  # deleted meanwhile: nothing is kept
        inserted = await fetch_images(
            conn,
            f"""
            INSERT INTO product_images (product_id, sha256, object_key, format, width,
                height, bytes, position, alt_text, renditions, renditions_pending)
            VALUES (%(pid)s, %(sha)s, %(key)s, %(format)s, %(width)s, %(height)s,
                %(bytes)s,
                coalesce(%(position)s, (SELECT coalesce(max(position) + 1, 0)
                                          FROM product_images WHERE product_id = %(pid)s)),
                %(alt)s, %(renditions)s, %(pending)s)
            ON CONFLICT (product_id, sha256) DO NOTHING
            RETURNING {COLUMNS}
            """,
            {
                "pid": product_id,
                "sha": sha,
                "key": key,
                "format": processed.format,
                "width": processed.width,
                "height": processed.height,
                "bytes": len(processed.data),
                "position": position,
                "alt": alt_text,
                "renditions": Jsonb(renditions),
                "pending": pending,
            },
        )
        if inserted:
            result = SavedImage(inserted[0], True, await touch_product(conn, product_id))
        else:
            existing = await fetch_images(
                conn,
                f"SELECT {COLUMNS} FROM product_images WHERE product_id = %s AND sha256 = %s",
                (product_id, sha),
            )
            assert existing  # the conflicting row, locked by the conflict
            result = SavedImage(existing[0], False, None)
    finally:
        if timings is not None:
            timings["store"] = time.perf_counter() - started
    return result


async def _cleanup_after_failure(pool: Pool, blobs: ImageBlobs, sha: str) -> None:
    try:
        await collect_unreferenced(pool, blobs, [sha])
    except Exception as exc:  # the GC job is the backstop
        log.warning("images.cleanup_failed", sha256=sha, error=str(exc)[:200])


async def collect_unreferenced(pool: Pool, blobs: ImageBlobs, shas: Iterable[str]) -> list[str]:
    """Delete the blobs of each content hash that no row uses. Returns the deleted keys."""
    deleted: list[str] = []
    for sha in sorted(set(shas)):
        async with pool.connection() as conn, conn.transaction():
            await _lock_content(conn, sha, shared=False)
            cur = await conn.execute(
                "SELECT 1 FROM product_images WHERE sha256 = %s LIMIT 1", (sha,)
            )
            if await cur.fetchone() is not None:
                continue
            originals = [o.key for o in await blobs.list(f"{ORIGINALS_PREFIX}{sha}.")]
            renditions = [o.key for o in await blobs.list(f"{RENDITIONS_PREFIX}{sha}/")]
            # Original first, renditions after: see storage/image_blobs.py.
            await blobs.delete(originals)
            if renditions:
                await blobs.delete_many(renditions)
            deleted += originals + renditions
    return deleted


async def delete_image_row(
    conn: Conn, product_id: int, image_id: int
) -> tuple[str | None, int | None]:
    """Delete the image row in the caller's transaction: (its content hash, the product's
    new version), or (None, None) if the product has no such image. After the commit,
    pass the hash to `release_blobs` (or leave the blobs to the GC job)."""
    # product first, then its image: the lock order every writer uses (no deadlocks)
    await conn.execute("SELECT 1 FROM products WHERE id = %s FOR NO KEY UPDATE", (product_id,))
    cur = await conn.execute(
        "DELETE FROM product_images WHERE id = %s AND product_id = %s RETURNING sha256",
        (image_id, product_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None, None
    return str(row["sha256"]), await touch_product(conn, product_id)


class PositionOutOfRange(Exception):
    """The asked place is past the product's last image (`last` is the highest allowed)."""

    def __init__(self, last: int) -> None:
        super().__init__(f"must be between 0 and {last}")
        self.last = last


async def move_image(
    conn: Conn, product_id: int, image_id: int, position: int
) -> tuple[list[ImageRow], int] | None:
    """Move the image to place `position` (0 = primary) in the product's order, in the
    caller's transaction; the others keep their order and every image gets its place as
    its new `position` (0..n-1). Returns (the images in their new order, the product's
    new version), None if the product has no such image; `PositionOutOfRange` if
    `position` is past the last image."""
    # product first, then its images: the lock order every writer uses (no deadlocks)
    await conn.execute("SELECT 1 FROM products WHERE id = %s FOR NO KEY UPDATE", (product_id,))
    rows = await fetch_images(
        conn,
        f"SELECT {COLUMNS} FROM product_images WHERE product_id = %s"
        " ORDER BY position, id FOR UPDATE",
        (product_id,),
    )
    moving = next((r for r in rows if r.id == image_id), None)
    if moving is None:
        return None
    if position > len(rows) - 1:
        raise PositionOutOfRange(len(rows) - 1)
    order = [r.id for r in rows if r.id != image_id]
    order.insert(position, image_id)
    moved = await fetch_images(
        conn,
        f"""UPDATE product_images i SET position = (o.n - 1)::integer
            FROM unnest(%s::bigint[]) WITH ORDINALITY AS o(id, n)
            WHERE i.id = o.id AND i.product_id = %s
            RETURNING {", ".join("i." + c.strip() for c in COLUMNS.split(","))}""",
        (order, product_id),
    )
    version = await touch_product(conn, product_id)
    assert version is not None  # the product row is locked and has this image
    return sorted(moved, key=lambda r: r.position), version


async def release_blobs(pool: Pool, blobs: ImageBlobs, shas: Iterable[str]) -> list[str]:
    """Best-effort immediate delete of blobs no row uses any more (after a commit)."""
    try:
        return await collect_unreferenced(pool, blobs, shas)
    except (StoreUnavailable, OSError) as exc:
        log.warning("images.release_deferred_to_gc", error=str(exc)[:200])
        return []
