"""MinIO (S3) client factory, bucket bootstrap and health probe.

The minio client is synchronous; async callers wrap calls in `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject


def create_minio(
    endpoint: str,
    *,
    access_key: str,
    secret_key: str,
    secure: bool = False,
    region: str = "us-east-1",
) -> Minio:
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=2.0, read=10.0),
        maxsize=32,
        retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=[502, 503, 504]),
    )
    return Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=region,
        http_client=http,
    )


def ensure_bucket(client: Minio, bucket: str) -> None:
    """Create the bucket if it does not exist (idempotent, safe to race)."""
    if not client.bucket_exists(bucket):
        try:
            client.make_bucket(bucket)
        except Exception:
            if not client.bucket_exists(bucket):
                raise


def empty_bucket(client: Minio, bucket: str) -> None:
    """Delete every object of the bucket (which must exist)."""
    names = [o.object_name for o in client.list_objects(bucket, recursive=True)]
    for error in client.remove_objects(bucket, (DeleteObject(n) for n in names if n)):
        raise RuntimeError(f"could not delete {error.name} from {bucket}: {error.message}")


def remove_bucket(client: Minio, bucket: str) -> None:
    """Delete every object of the bucket, then the bucket (no-op if it does not exist)."""
    if not client.bucket_exists(bucket):
        return
    empty_bucket(client, bucket)
    client.remove_bucket(bucket)


async def ping(client: Minio, bucket: str) -> None:
    """Reachable and the bucket exists (created here if MinIO was down at startup)."""
    await asyncio.to_thread(ensure_bucket, client, bucket)
