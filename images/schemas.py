"""Product image payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from kit.json_types import JSON_INTEGER, TEXT_PATTERN


class RenditionOut(BaseModel):
    width: int = Field(description="nominal width (200, 800); the image is never upscaled")
    actual_width: int
    height: int
    bytes: int
    content_type: Literal["image/webp"] = "image/webp"
    url: str


class ImageOut(BaseModel):
    id: int
    product_id: int
    format: Literal["jpeg", "png", "webp"]
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str = Field(description="of the stored (normalised) original; also its object key")
    position: int = Field(description="lowest = primary image")
    alt_text: str
    created_at: datetime
    url: str = Field(description="the normalised original (metadata stripped)")
    renditions: list[RenditionOut] = Field(description="empty while renditions_pending")
    renditions_pending: bool = Field(
        False, description="the worker has not made the renditions yet; use `url` meanwhile"
    )
    urls_expire_at: datetime | None = Field(
        description="presigned URLs stop working then; null for public URLs"
    )


class ImagePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: Annotated[int, Field(ge=0, le=1_000_000), JSON_INTEGER] = Field(
        description="the image's new place in the product's order (0 = primary); the "
        "others keep their order and are renumbered 0..n-1"
    )


class ImageList(BaseModel):
    items: list[ImageOut]


MIN_PART_BYTES = 5 * 1024 * 1024  # S3: every part but the last


class DirectUploadIn(BaseModel):
    alt_text: str = Field("", max_length=1000, pattern=TEXT_PATTERN)
    position: Annotated[int, Field(ge=0, le=1_000_000), JSON_INTEGER] | None = None
    parts: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER] = Field(
        1,
        description="1: one presigned PUT; more: an S3 multipart upload with one presigned "
        "PUT per part (each part but the last at least 5 MiB)",
    )


class DirectUploadOut(BaseModel):
    upload_id: uuid.UUID
    method: Literal["PUT"] = "PUT"
    url: str | None = Field(
        description="PUT the image bytes here, straight to the blob store (single upload)"
    )
    part_urls: list[str] = Field(
        default_factory=list,
        description="multipart: PUT part n to part_urls[n-1]; keep each answer's ETag",
    )
    min_part_bytes: int = MIN_PART_BYTES
    max_bytes: int
    expires_at: datetime
    complete_url: str = Field(description="POST here once the upload succeeded")


class UploadedPart(BaseModel):
    part_number: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER]
    etag: str = Field(min_length=1, max_length=200)


class DirectUploadComplete(BaseModel):
    parts: list[UploadedPart] = Field(
        default_factory=list, description="multipart uploads only: every part and its ETag"
    )
