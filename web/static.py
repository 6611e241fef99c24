"""The pages' CSS and the esbuild bundle, served by the app (nothing from elsewhere)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter()

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@router.get("/web/static/{name:path}")
async def static(name: str) -> FileResponse:
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR.resolve() not in path.parents or not path.is_file() or path.suffix not in _TYPES:
        raise HTTPException(404)
    # no fingerprint in the names yet: revalidate (cheap 304s) rather than cache for long
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
