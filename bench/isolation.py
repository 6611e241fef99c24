"""Each benchmark run gets a Postgres schema, Redis prefix, search index prefix, bucket and
DuckDB file of its own, and removes them afterwards: a bench never touches the shop's
data, keys or indices, whatever the environment points at (`bench_settings`).

A bench once wrote products in its own schema under the shop's Redis prefix and raised
the shop's version floors; every name here is derived from one tag, so that cannot recur.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg

from app.settings import Settings
from app.stores import create_blob_client
from search.engine import create_search_engine
from storage import migrate
from storage.blobs import remove_bucket
from storage.cache import create_redis


def bench_settings(base: Settings, name: str, **overrides: object) -> Settings:
    """`base` with every store name replaced by one of this run's own."""
    tag = f"{name}_{uuid.uuid4().hex[:8]}"
    dashed = f"bench-{tag.replace('_', '-')}"
    values: dict[str, object] = {
        "database_schema": f"bench_{tag}",
        "redis_prefix": f"{dashed}:",
        "search_index_prefix": dashed,
        "s3_bucket": dashed,
        "duckdb_path": Path(tempfile.gettempdir()) / f"{dashed}.duckdb",
    }
    values.update(overrides)
    return base.model_copy(update=values)


def bench_env(settings: Settings) -> dict[str, str]:
    """The same names as POLYSHOP_* variables, for the app processes a bench starts."""
    return {
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
        "POLYSHOP_REDIS_PREFIX": settings.redis_prefix,
        "POLYSHOP_SEARCH_INDEX_PREFIX": settings.search_index_prefix,
        "POLYSHOP_S3_BUCKET": settings.s3_bucket,
        "POLYSHOP_DUCKDB_PATH": str(settings.duckdb_path),
    }


@contextlib.asynccontextmanager
async def bench_stores(settings: Settings) -> AsyncIterator[Settings]:
    """Migrate the run's schema; on exit drop everything the run may have made."""
    await asyncio.to_thread(migrate.upgrade, settings.database_url, settings.database_schema)
    try:
        yield settings
    finally:
        await drop_bench_state(settings)


async def drop_bench_indices(settings: Settings) -> None:
    """The run's indices on `settings`' engine (a bench that measures both engines calls
    it for the other one)."""
    engine = create_search_engine(settings.search_engine, settings.search_url)
    try:
        with contextlib.suppress(Exception):  # the engine may not run for this bench
            # by name: Elasticsearch refuses a wildcard delete (destructive_requires_name)
            names = await engine.indices_matching(f"{settings.search_index_prefix}*")
            await engine.delete_indices(names)
    finally:
        await engine.close()


async def drop_bench_state(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as c:
        await c.execute(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE')
    redis = create_redis(settings.redis_url, timeout_s=5)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
    await drop_bench_indices(settings)
    with contextlib.suppress(Exception):
        await asyncio.to_thread(remove_bucket, create_blob_client(settings), settings.s3_bucket)
    await asyncio.to_thread(Path(settings.duckdb_path).unlink, missing_ok=True)
