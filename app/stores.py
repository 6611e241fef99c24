"""The clients of every store, created once per process and closed on shutdown."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from minio import Minio
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from analytics.duck import AnalyticsStore, SandboxLimits, create_analytics_store
from analytics.lake import LakeConfig, LakeStore
from app.settings import Settings
from search.engine import SearchEngine, create_search_engine
from storage.blobs import create_minio
from storage.cache import create_redis
from storage.postgres import create_pool

log = structlog.get_logger()

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]


@dataclass
class Stores:
    settings: Settings
    pg: PgPool
    redis: Redis
    search: SearchEngine
    blobs: Minio
    analytics: AnalyticsStore | LakeStore


def lake_config(settings: Settings) -> LakeConfig | None:
    """Where the DuckLake lives, when it is the analytical copy's backend."""
    if settings.analytics_backend != "ducklake":
        return None
    return LakeConfig(
        catalog_url=settings.database_url,
        metadata_schema=settings.lake_metadata_schema,
        bucket=settings.lake_bucket,
        prefix=settings.lake_prefix,
        s3_endpoint=settings.s3_endpoint,
        s3_access_key=settings.s3_access_key,
        s3_secret_key=settings.s3_secret_key.get_secret_value(),
        s3_secure=settings.s3_secure,
        s3_region=settings.s3_region,
    )


def create_analytics(settings: Settings) -> AnalyticsStore | LakeStore:
    limits = SandboxLimits(settings.analytics_memory_limit, settings.analytics_threads)
    lake = lake_config(settings)
    if lake is not None:
        return LakeStore(lake, limits)
    return create_analytics_store(settings.duckdb_path, limits)


def create_blob_client(settings: Settings) -> Minio:
    """The MinIO/S3 client the settings describe (also for tests and benchmarks that
    manage buckets without opening every store)."""
    return create_minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


@contextlib.asynccontextmanager
async def open_stores(
    settings: Settings, *, application_name: str | None = None
) -> AsyncIterator[Stores]:
    pg = await create_pool(
        settings.database_url,
        schema=settings.database_schema,
        application_name=application_name or settings.service_name,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        statement_timeout_ms=settings.database_statement_timeout_ms,
        timeout_s=settings.database_pool_timeout_s,
        fail_fast_s=settings.database_fail_fast_s,
    )
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)
    search = create_search_engine(
        settings.search_engine, settings.search_url, timeout_s=settings.search_timeout_s
    )
    blobs = create_blob_client(settings)
    analytics = create_analytics(settings)
    stores = Stores(settings, pg, redis, search, blobs, analytics)
    log.info("stores.opened", search_engine=settings.search_engine, schema=settings.database_schema)
    try:
        yield stores
    finally:
        await search.close()
        await redis.aclose()
        await pg.close()
        analytics.close()
        log.info("stores.closed")
