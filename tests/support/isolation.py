"""Per-test isolation: each test gets its own Postgres schema, Redis key prefix,
search index prefix, bucket and DuckDB file, and they are removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg

from app.settings import Settings
from app.stores import create_blob_client
from jobs.admin import delete_topology
from jobs.topology import Topology
from search.engine import create_search_engine
from storage import migrate
from storage.blobs import remove_bucket
from storage.cache import create_redis


def isolated_settings(env: dict[str, str], tmp_path: Path, **overrides: object) -> Settings:
    tag = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "environment": "test",
        "database_url": env["POLYSHOP_DATABASE_URL"],
        "database_schema": f"t_{tag}",
        "redis_url": env["POLYSHOP_REDIS_URL"],
        "redis_prefix": f"t{tag}:",
        "search_engine": env["POLYSHOP_SEARCH_ENGINE"],
        "search_url": env["POLYSHOP_SEARCH_URL"],
        "search_index_prefix": f"t-{tag}",
        "s3_endpoint": env["POLYSHOP_S3_ENDPOINT"],
        "s3_access_key": env["POLYSHOP_S3_ACCESS_KEY"],
        "s3_secret_key": env["POLYSHOP_S3_SECRET_KEY"],
        "s3_bucket": f"t-{tag}",
        "duckdb_path": tmp_path / "analytics.duckdb",
        # the DuckLake backend (when a test turns it on): its own catalog schema, and
        # its files under a prefix of the test's own bucket
        "lake_metadata_schema": f"l_{tag}",
        "lake_bucket": f"t-{tag}",
        "lake_prefix": "lake/",
        "broker_prefix": f"t{tag}.",
    }
    for key, env_name in (
        ("broker_url", "POLYSHOP_BROKER_URL"),
        ("smtp_host", "POLYSHOP_SMTP_HOST"),
        ("smtp_port", "POLYSHOP_SMTP_PORT"),
        # the lake readers' credentials, created by the dev stack (read-only)
        ("lake_reader_s3_access_key", "POLYSHOP_LAKE_READER_S3_ACCESS_KEY"),
        ("lake_reader_s3_secret_key", "POLYSHOP_LAKE_READER_S3_SECRET_KEY"),
        ("lake_reader_database_user", "POLYSHOP_LAKE_READER_DATABASE_USER"),
    ):
        if env.get(env_name):
            values[key] = env[env_name]
    values.update(overrides)
    # model_validate reads no environment: the test sees exactly these values
    return Settings.model_validate(values)


@contextlib.asynccontextmanager
async def isolated_stores(settings: Settings) -> AsyncIterator[Settings]:
    """Migrate the test's schema; on exit drop everything the test may have made."""
    await asyncio.to_thread(migrate.upgrade, settings.database_url, settings.database_schema)
    try:
        yield settings
    finally:
        await _drop_everything(settings)


async def _drop_everything(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as c:
        await c.execute(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE')
        await c.execute(f'DROP SCHEMA IF EXISTS "{settings.lake_metadata_schema}" CASCADE')

    redis = create_redis(settings.redis_url, timeout_s=2)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
    except Exception:
        pass  # a test may have stopped Redis on purpose; its keys die with the prefix
    finally:
        await redis.aclose()

    engine = create_search_engine(settings.search_engine, settings.search_url)
    try:
        await engine.client.indices.delete(
            index=f"{settings.search_index_prefix}*", ignore_unavailable=True
        )
    except Exception:
        pass
    finally:
        await engine.close()

    with contextlib.suppress(Exception):  # the test's queues and exchanges
        await delete_topology(
            settings.broker_url.get_secret_value(),
            Topology(settings.broker_prefix, settings.broker_delivery_limit),
            timeout_s=3,
        )

    with contextlib.suppress(Exception):
        await asyncio.to_thread(remove_bucket, create_blob_client(settings), settings.s3_bucket)
