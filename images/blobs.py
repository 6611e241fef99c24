"""The image objects in MinIO/S3: key layout, async access, error translation.

Key layout (content-addressed, so identical images are stored once):
- `images/sha256/<hex>.<ext>`   the normalised original; <hex> = sha256 of its bytes
- `renditions/<hex>/<width>.webp` renditions derived from that original
- `incoming/<upload id>`        direct (presigned) uploads waiting to be verified

Order (defence in depth; the real guard is the row/lock protocol in images/content.py):
writers put the renditions *before* the original, deleters delete the original *before*
the renditions, so an original in the bucket normally has its renditions too.

minio-py is synchronous; every call runs in a worker thread. Connection failures and
5xx answers become `StoreUnavailable("blobs", ...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, TypeVar

import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from storage.blobs import ensure_bucket
from storage.errors import StoreUnavailable

ORIGINALS_PREFIX = "images/sha256/"
RENDITIONS_PREFIX = "renditions/"
INCOMING_PREFIX = "incoming/"
IMMUTABLE = "public, max-age=31536000, immutable"

T = TypeVar("T")

# Buckets already ensured per client, so the upload path pays for the check once.
_ensured: weakref.WeakKeyDictionary[Minio, set[str]] = weakref.WeakKeyDictionary()


def original_key(sha256_hex: str, ext: str) -> str:
    return f"{ORIGINALS_PREFIX}{sha256_hex}.{ext}"


def rendition_key(sha256_hex: str, width: int) -> str:
    return f"{RENDITIONS_PREFIX}{sha256_hex}/{width}.webp"


def incoming_key(upload_id: str) -> str:
    return f"{INCOMING_PREFIX}{upload_id}"


def sha_of_key(key: str) -> str | None:
    """The content hash a stored key belongs to (None for keys outside the layout)."""
    if key.startswith(ORIGINALS_PREFIX):
        return key[len(ORIGINALS_PREFIX) :].split(".", 1)[0] or None
    if key.startswith(RENDITIONS_PREFIX):
        return key[len(RENDITIONS_PREFIX) :].split("/", 1)[0] or None
    return None


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime | None


def public_read_policy(bucket: str) -> str:
    """Anonymous GET for the originals and renditions only (never for incoming/)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ["*"]},
                    "Action": ["s3:GetObject"],
                    "Resource": [
                        f"arn:aws:s3:::{bucket}/{ORIGINALS_PREFIX}*",
                        f"arn:aws:s3:::{bucket}/{RENDITIONS_PREFIX}*",
                    ],
                }
            ],
        }
    )


_UNAVAILABLE_CODES = (
    "ServiceUnavailable",
    "SlowDown",
    "InternalError",
    "XMinioServerNotInitialized",
)


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, ServerError | InvalidResponseError):
        return True
    if isinstance(exc, S3Error):
        return exc.code in (
            "ServiceUnavailable",
            "SlowDown",
            "InternalError",
            "XMinioServerNotInitialized",
        )
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class ImageBlobs:
    """Async access to the image bucket through one shared minio client."""

    def __init__(self, client: Minio, bucket: str, *, public_read: bool = False) -> None:
        self.client = client
        self.bucket = bucket
        self.public_read = public_read

    async def _call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            if _unavailable(exc):
                raise StoreUnavailable("blobs", f"{type(exc).__name__}: {exc}"[:300]) from exc
            raise

    async def ensure_bucket(self) -> None:
        """Create the bucket (and its public-read policy, if wanted) once per client."""
        done = _ensured.setdefault(self.client, set())
        if self.bucket in done:
            return
        await self._call(ensure_bucket, self.client, self.bucket)
        if self.public_read:
            await self._call(
                self.client.set_bucket_policy, self.bucket, public_read_policy(self.bucket)
            )
        done.add(self.bucket)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call(
            self.client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata={"Cache-Control": IMMUTABLE},
        )

    async def stat(self, key: str) -> StoredObject | None:
        def stat() -> StoredObject | None:
            try:
                st = self.client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                    return None
                raise
            return StoredObject(key, st.size or 0, st.last_modified)

        return await self._call(stat)

    async def download_to(self, key: str, sink: IO[bytes], *, limit: int) -> int:
        """Copy the object into `sink`, reading at most `limit` + 1 bytes. Returns the
        number of bytes copied (> limit means: too large, stopped early)."""

        def download() -> int:
            response = self.client.get_object(self.bucket, key)
            copied = 0
            try:
                for chunk in response.stream(256 * 1024):
                    sink.write(chunk)
                    copied += len(chunk)
                    if copied > limit:
                        break
            finally:
                response.close()
                response.release_conn()
            return copied

        return await self._call(download)

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete keys in the given order (one request each, so the order holds)."""
        for key in keys:
            await self._call(self.client.remove_object, self.bucket, key)

    async def delete_many(self, keys: Iterable[str]) -> None:
        def delete() -> None:
            errors = self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys))
            failed = [e for e in errors]
            if failed:
                raise StoreUnavailable("blobs", f"{len(failed)} objects not deleted: {failed[0]}")

        await self._call(delete)

    async def list(self, prefix: str) -> list[StoredObject]:
        def listing() -> list[StoredObject]:
            return [
                StoredObject(o.object_name, o.size or 0, o.last_modified)
                for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if o.object_name
            ]

        return await self._call(listing)

    def presigned_get(self, key: str, *, expiry_s: int, now: datetime) -> str:
        """A GET URL valid for at least half of `expiry_s`. The signing time is rounded
        down to a window of expiry_s/2, so the URL stays the same within a window and
        clients and caches can keep it. Signing is local: no request to MinIO."""
        window = max(1, expiry_s // 2)
        signed_at = datetime.fromtimestamp(int(now.timestamp()) // window * window, tz=now.tzinfo)
        return str(
            self.client.presigned_get_object(
                self.bucket, key, expires=timedelta(seconds=expiry_s), request_date=signed_at
            )
        )

    def presigned_put(self, key: str, *, expiry_s: int) -> str:
        return str(
            self.client.presigned_put_object(self.bucket, key, expires=timedelta(seconds=expiry_s))
        )

    # --- presigned multipart uploads (direct uploads of big files) ---
    # minio-py exposes the S3 multipart calls only as underscore methods; they are
    # stable in 7.x and wrapped here, in one place.

    async def start_multipart(self, key: str) -> str:
        return str(await self._call(self.client._create_multipart_upload, self.bucket, key, {}))

    def presigned_part(self, key: str, upload_id: str, part_number: int, *, expiry_s: int) -> str:
        return str(
            self.client.get_presigned_url(
                "PUT",
                self.bucket,
                key,
                expires=timedelta(seconds=expiry_s),
                extra_query_params={"partNumber": str(part_number), "uploadId": upload_id},
            )
        )

    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        """Raise MultipartRejected when S3 refuses the part list (the client's fault)."""
        try:
            await self._call(
                self.client._complete_multipart_upload,
                self.bucket,
                key,
                upload_id,
                [Part(number, etag) for number, etag in sorted(parts)],
            )
        except S3Error as exc:
            if exc.code in _CLIENT_MULTIPART_ERRORS:
                raise MultipartRejected(exc.code or "", exc.message or "") from exc
            raise

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Best effort: MinIO also drops stale multipart uploads by itself."""
        with contextlib.suppress(S3Error, StoreUnavailable):
            await self._call(self.client._abort_multipart_upload, self.bucket, key, upload_id)


_CLIENT_MULTIPART_ERRORS = (
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "NoSuchUpload",
    "MalformedXML",
)


class MultipartRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
