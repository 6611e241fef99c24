"""Images served from the app's own origin: the page never points the browser at MinIO.

Keys are content-addressed (sha256), so each answer is immutable and cached for a year.
Only originals and renditions are served, never `incoming/` (unverified uploads).
"""

from __future__ import annotations

import io
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from images.blobs import IMMUTABLE, ORIGINALS_PREFIX, RENDITIONS_PREFIX
from images.repository import ImageRow
from images.service import image_blobs
from web.backend import get_stores

router = APIRouter()

_KEY = re.compile(
    rf"^({re.escape(ORIGINALS_PREFIX)}[0-9a-f]{{64}}\.(jpg|jpeg|png|webp)"
    rf"|{re.escape(RENDITIONS_PREFIX)}[0-9a-f]{{64}}/[0-9]{{1,5}}\.webp)$"
)
_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def url(key: str) -> str:
    return f"/web/media/{key}"


def picture(row: ImageRow) -> dict[str, Any]:
    """What a template needs for an <img>: src, srcset (renditions by width), alt."""
    renditions = sorted(row.renditions, key=lambda r: int(r["width"]))
    srcset = ", ".join(f"{url(r['key'])} {int(r['width'])}w" for r in renditions)
    small = url(renditions[0]["key"]) if renditions else url(row.object_key)
    return {
        "id": row.id,
        "src": small,
        "large": url(renditions[-1]["key"]) if renditions else url(row.object_key),
        "srcset": srcset,
        "alt": row.alt_text,
        "width": row.width,
        "height": row.height,
        "position": row.position,
    }


@router.get("/web/media/{key:path}")
async def media(key: str, request: Request) -> Response:
    if not _KEY.match(key):
        raise HTTPException(404)
    stores = get_stores(request)
    sink = io.BytesIO()
    blobs = image_blobs(stores)
    if await blobs.stat(key) is None:
        raise HTTPException(404)
    await blobs.download_to(key, sink, limit=stores.settings.image_max_bytes * 4)
    return Response(
        sink.getvalue(),
        media_type=_TYPES[key.rsplit(".", 1)[-1]],
        headers={"Cache-Control": IMMUTABLE},
    )
