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

import asyncio
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from storage.errors import StoreUnavailable
from storage.image_blobs import (
    INCOMING_PREFIX,
    ORIGINALS_PREFIX,
    RENDITIONS_PREFIX,
    ImageBlobs,
    incoming_key,
    original_key,
    rendition_key,
    sha_of_key,
)
from storage.image_processing import (
    CONTENT_TYPES,
    EXTENSIONS,
    ImageRejected,
    ProcessedImage,
    renditions_of_stored,
)
from storage.products import UPSERTED, emit_event

log = structlog.get_logger()

CONTENT_TYPE_BY_NAME: dict[str, str] = {str(k): v for k, v in CONTENT_TYPES.items()}

Conn = AsyncConnection[dict[str, Any]]
Pool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]

_COLUMNS = (
    "id, product_id, sha256, object_key, format, width, height, bytes, position,"
    " alt_text, renditions, renditions_pending, created_at"
)


class ProductNotFound(Exception):
    """The product does not exist (or is deleted)."""


@dataclass(frozen=True)
class ImageRow:
    id: int
    product_id: int
    sha256: str
    object_key: str
    format: str
    width: int
    height: int
    bytes: int
    position: int
    alt_text: str
    renditions: list[dict[str, Any]]
    renditions_pending: bool
    created_at: datetime

    @property
    def content_type(self) -> str:
        return CONTENT_TYPE_BY_NAME.get(self.format, "application/octet-stream")


@dataclass(frozen=True)
class SavedImage:
    row: ImageRow
    created: bool
    product_version: int | None  # the product's new version when the image was added


@dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    product_id: int
    object_key: str
    alt_text: str
    position: int | None
    expires_at: datetime
    s3_upload_id: str | None = None


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    scanned: int = 0


def _row(r: dict[str, Any]) -> ImageRow:
    return ImageRow(**{k: r[k] for k in ImageRow.__dataclass_fields__})


async def _lock_content(conn: Conn, sha256: str, *, shared: bool) -> None:
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {fn}(hashtextextended(%s, 0))", ("product-image:" + sha256,))


_PRODUCT_EXISTS = "SELECT 1 FROM products WHERE id = %s AND deleted_at IS NULL"
_LOCK_PRODUCT = _PRODUCT_EXISTS + " FOR NO KEY UPDATE"


async def product_exists(conn: Conn, product_id: int) -> bool:
    cur = await conn.execute(_PRODUCT_EXISTS, (product_id,))
    return await cur.fetchone() is not None


async def list_images(conn: Conn, product_id: int) -> list[ImageRow]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM product_images WHERE product_id = %s ORDER BY position, id",
        (product_id,),
    )
    return [_row(r) for r in await cur.fetchall()]


async def primary_images(conn: Conn, product_ids: Sequence[int]) -> dict[int, ImageRow]:
    """The primary (lowest position) image of each product that has one."""
    cur = await conn.execute(
        f"SELECT DISTINCT ON (product_id) {_COLUMNS} FROM product_images"
        " WHERE product_id = ANY(%s) ORDER BY product_id, position, id",
        (list(product_ids),),
    )
    return {r["product_id"]: _row(r) for r in await cur.fetchall()}


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
    """Store the blobs (unless the same content is already stored) and then the row.
    `created` is False when this product already had this image. A processed image
    without renditions (deferred to the worker) gets a pending row. ProductNotFound
    if the product does not exist (checked before anything is put)."""
    sha = processed.sha256
    key = original_key(sha, EXTENSIONS[processed.format])
    # none made (deferred to the worker): an empty list and a pending row
    widths = sorted(set(rendition_widths)) if processed.renditions else []
    renditions: list[dict[str, Any]] = [
        {"key": rendition_key(sha, w), "width": r.width, "height": r.height, "bytes": len(r.data)}
        for w, r in zip(widths, processed.renditions, strict=True)
    ]
    await blobs.ensure_bucket()
    wrote = False
    started = time.perf_counter()
    try:
        async with pool.connection() as conn, conn.transaction():
            # The content lock first, in a statement of its own: the next one must read
            # what was committed before we held the lock (its snapshot starts after it).
            await _lock_content(conn, sha, shared=True)
            found, ready = await _product_and_ready_renditions(conn, product_id, sha)
            if not found:
                raise ProductNotFound(product_id)
            pending = bool(rendition_widths) and not processed.renditions
            if ready is not None:
                # A row with this content and its renditions exists, and our shared lock
                # keeps GC away: its blobs are there, nothing to put.
                renditions, pending = ready, False
            else:
                wrote = True
                put_started = time.perf_counter()
                # Renditions first, original last: see storage/image_blobs.py.
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
            locked = await conn.execute(_LOCK_PRODUCT, (product_id,))
            if await locked.fetchone() is None:
                raise ProductNotFound(product_id)  # deleted meanwhile: nothing is kept
            cur = await conn.execute(
                f"""
                INSERT INTO product_images (product_id, sha256, object_key, format, width,
                    height, bytes, position, alt_text, renditions, renditions_pending)
                VALUES (%(pid)s, %(sha)s, %(key)s, %(format)s, %(width)s, %(height)s,
                    %(bytes)s,
                    coalesce(%(position)s, (SELECT coalesce(max(position) + 1, 0)
                                              FROM product_images WHERE product_id = %(pid)s)),
                    %(alt)s, %(renditions)s, %(pending)s)
                ON CONFLICT (product_id, sha256) DO NOTHING
                RETURNING {_COLUMNS}
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
            inserted = await cur.fetchone()
            if inserted is not None:
                result = SavedImage(_row(inserted), True, await touch_product(conn, product_id))
            else:
                cur = await conn.execute(
                    f"SELECT {_COLUMNS} FROM product_images WHERE product_id = %s AND sha256 = %s",
                    (product_id, sha),
                )
                existing = await cur.fetchone()
                assert existing is not None  # the conflicting row, locked by the conflict
                result = SavedImage(_row(existing), False, None)
    except Exception:
        if wrote:
            await _cleanup_after_failure(pool, blobs, sha)
        raise
    finally:
        if timings is not None:
            timings["store"] = time.perf_counter() - started
    return result


async def touch_product(conn: Conn, product_id: int) -> int | None:
    """An image change changes the product's JSON (its primary image): bump the product's
    version and emit `product.upserted` in the same transaction, like any product write,
    so the cache and the search index follow through the outbox. Returns the new
    version (None if the product is gone)."""
    cur = await conn.execute(
        "UPDATE products SET version = version + 1, updated_at = now()"
        " WHERE id = %s AND deleted_at IS NULL RETURNING version",
        (product_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    version = int(row["version"])
    await emit_event(conn, product_id, UPSERTED, version)
    return version


async def _product_and_ready_renditions(
    conn: Conn, product_id: int, sha: str
) -> tuple[bool, list[dict[str, Any]] | None]:
    """Whether the product exists, and the renditions of a finished row with this
    content (None if there is none)."""
    cur = await conn.execute(
        f"SELECT EXISTS ({_PRODUCT_EXISTS}) AS found, (SELECT renditions FROM product_images"
        " WHERE sha256 = %s AND NOT renditions_pending LIMIT 1) AS ready",
        (product_id, sha),
    )
    row = await cur.fetchone()
    assert row is not None
    ready = row["ready"]
    return bool(row["found"]), (list(ready) if ready is not None else None)


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


async def delete_image(
    pool: Pool, blobs: ImageBlobs, product_id: int, image_id: int
) -> tuple[bool, int | None]:
    """Delete the row (committed first), then its blobs if no other row uses them.
    If the blobs cannot be deleted now, the GC job collects them later.
    Returns (deleted, the product's new version)."""
    async with pool.connection() as conn, conn.transaction():
        # product first, then its image: the lock order every writer uses (no deadlocks)
        await conn.execute("SELECT 1 FROM products WHERE id = %s FOR NO KEY UPDATE", (product_id,))
        cur = await conn.execute(
            "DELETE FROM product_images WHERE id = %s AND product_id = %s RETURNING sha256",
            (image_id, product_id),
        )
        row = await cur.fetchone()
        version = await touch_product(conn, product_id) if row is not None else None
    if row is None:
        return False, None
    await release_blobs(pool, blobs, [row["sha256"]])
    return True, version


async def delete_product_images(conn: Conn, product_id: int) -> list[str]:
    """Delete every image row of a product inside the caller's transaction (which should
    have locked or updated the product row first: products, then images, is the lock
    order). Returns the content hashes to pass to `release_blobs` after the commit (or
    leave to the GC job). Pending direct uploads are left alone - a completion call for
    a deleted product answers 404, and the GC removes them once they expire."""
    cur = await conn.execute(
        "DELETE FROM product_images WHERE product_id = %s RETURNING sha256", (product_id,)
    )
    return sorted({r["sha256"] for r in await cur.fetchall()})


async def release_blobs(pool: Pool, blobs: ImageBlobs, shas: Iterable[str]) -> list[str]:
    """Best-effort immediate delete of blobs no row uses any more (after a commit)."""
    try:
        return await collect_unreferenced(pool, blobs, shas)
    except (StoreUnavailable, OSError) as exc:
        log.warning("images.release_deferred_to_gc", error=str(exc)[:200])
        return []


# --- direct uploads ---------------------------------------------------------------------


def new_upload_id() -> uuid.UUID:
    return uuid.uuid4()


async def create_upload(
    conn: Conn,
    product_id: int,
    upload_id: uuid.UUID,
    *,
    alt_text: str,
    position: int | None,
    expiry_s: int,
    s3_upload_id: str | None = None,
) -> Upload:
    cur = await conn.execute(
        """
        INSERT INTO product_image_uploads (id, product_id, object_key, alt_text, position,
            expires_at, s3_upload_id)
        SELECT %(id)s, p.id, %(key)s, %(alt)s, %(position)s,
               now() + make_interval(secs => %(expiry)s), %(s3)s
          FROM products p WHERE p.id = %(pid)s AND p.deleted_at IS NULL
        RETURNING id, product_id, object_key, alt_text, position, expires_at, s3_upload_id
        """,
        {
            "id": upload_id,
            "key": incoming_key(str(upload_id)),
            "alt": alt_text,
            "position": position,
            "expiry": expiry_s,
            "pid": product_id,
            "s3": s3_upload_id,
        },
    )
    row = await cur.fetchone()
    if row is None:
        raise ProductNotFound(product_id)
    return Upload(**row)


async def lock_upload(conn: Conn, product_id: int, upload_id: uuid.UUID) -> Upload | None:
    """The live upload, locked for this transaction (a second completion waits)."""
    cur = await conn.execute(
        """
        SELECT id, product_id, object_key, alt_text, position, expires_at, s3_upload_id
          FROM product_image_uploads
         WHERE id = %s AND product_id = %s AND expires_at > now()
           FOR UPDATE
        """,
        (upload_id, product_id),
    )
    row = await cur.fetchone()
    return Upload(**row) if row else None


async def delete_upload(conn: Conn, upload_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM product_image_uploads WHERE id = %s", (upload_id,))


# --- garbage collection -----------------------------------------------------------------


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


# --- deferred renditions (worker) --------------------------------------------------------


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
            cur = await conn.execute(
                "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0)) AS mine",
                ("product-image-renditions:" + sha,),
            )
            claimed = await cur.fetchone()
            if not claimed or not claimed["mine"]:
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
