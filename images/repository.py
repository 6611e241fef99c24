"""Product image rows in Postgres: the queries on `product_images` that the other image
modules and the products API share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

import structlog
from psycopg.rows import class_row

from images.context import Conn
from images.processing.process import (
    CONTENT_TYPES,
)
from storage.products import UPSERTED, emit_event

log = structlog.get_logger()

CONTENT_TYPE_BY_NAME: dict[str, str] = {str(k): v for k, v in CONTENT_TYPES.items()}


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


# The row's shape is declared once, by the dataclass: the columns queries return and
# the row factory that builds it come from it.
COLUMNS = ", ".join(f.name for f in dataclass_fields(ImageRow))
_AS_IMAGE = class_row(ImageRow)


async def fetch_images(conn: Conn, query: str, params: Any) -> list[ImageRow]:
    """The image rows a query over `product_images` returns (it selects COLUMNS)."""
    cur = conn.cursor(row_factory=_AS_IMAGE)
    await cur.execute(query, params)
    return await cur.fetchall()


PRODUCT_EXISTS = "SELECT 1 FROM products WHERE id = %s AND deleted_at IS NULL"
LOCK_PRODUCT = PRODUCT_EXISTS + " FOR NO KEY UPDATE"


async def product_exists(conn: Conn, product_id: int) -> bool:
    cur = await conn.execute(PRODUCT_EXISTS, (product_id,))
    return await cur.fetchone() is not None


async def list_images(conn: Conn, product_id: int) -> list[ImageRow]:
    return await fetch_images(
        conn,
        f"SELECT {COLUMNS} FROM product_images WHERE product_id = %s ORDER BY position, id",
        (product_id,),
    )


async def primary_images(conn: Conn, product_ids: Sequence[int]) -> dict[int, ImageRow]:
    """The primary (lowest position) image of each product that has one."""
    rows = await fetch_images(
        conn,
        f"SELECT DISTINCT ON (product_id) {COLUMNS} FROM product_images"
        " WHERE product_id = ANY(%s) ORDER BY product_id, position, id",
        (list(product_ids),),
    )
    return {row.product_id: row for row in rows}


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


async def product_and_ready_renditions(
    conn: Conn, product_id: int, sha: str
) -> tuple[bool, list[dict[str, Any]] | None]:
    """Whether the product exists, and the renditions of a finished row with this
    content (None if there is none)."""
    cur = await conn.execute(
        f"SELECT EXISTS ({PRODUCT_EXISTS}) AS found, (SELECT renditions FROM product_images"
        " WHERE sha256 = %s AND NOT renditions_pending LIMIT 1) AS ready",
        (product_id, sha),
    )
    row = await cur.fetchone()
    assert row is not None
    ready = row["ready"]
    return bool(row["found"]), (list(ready) if ready is not None else None)


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
