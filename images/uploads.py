"""Direct uploads: a presigned PUT straight to the blob store, tracked by a row in
`product_image_uploads` until the completion call verifies and stores the object."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from psycopg.rows import class_row

from images.blobs import (
    incoming_key,
)
from images.context import Conn
from images.repository import ProductNotFound

log = structlog.get_logger()


@dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    product_id: int
    object_key: str
    alt_text: str
    position: int | None
    expires_at: datetime
    s3_upload_id: str | None = None


def new_upload_id() -> uuid.UUID:
    return uuid.uuid4()


_AS_UPLOAD = class_row(Upload)


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
    cur = conn.cursor(row_factory=_AS_UPLOAD)
    await cur.execute(
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
    upload = await cur.fetchone()
    if upload is None:
        raise ProductNotFound(product_id)
    return upload


async def lock_upload(conn: Conn, product_id: int, upload_id: uuid.UUID) -> Upload | None:
    """The live upload, locked for this transaction (a second completion waits)."""
    cur = conn.cursor(row_factory=_AS_UPLOAD)
    await cur.execute(
        """
        SELECT id, product_id, object_key, alt_text, position, expires_at, s3_upload_id
          FROM product_image_uploads
         WHERE id = %s AND product_id = %s AND expires_at > now()
           FOR UPDATE
        """,
        (upload_id, product_id),
    )
    return await cur.fetchone()


async def delete_upload(conn: Conn, upload_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM product_image_uploads WHERE id = %s", (upload_id,))
