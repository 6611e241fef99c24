"""The store names of a scratch run (a test or a benchmark) and their removal.

A scratch run gets a Postgres schema, a Redis key prefix, a search index prefix, a
bucket, a DuckLake catalog schema and a broker prefix of its own, all derived from one
tag (`scratch_names`), and `scratch_stores` drops every one of them afterwards. Tests
(`tests/support/isolation.py`) and benchmarks (`bench/isolation.py`) both build on it, so
no run can write under the shop's names: a bench once wrote products in its own schema
under the shop's Redis prefix and raised the shop's version floors.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
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

_TAG = re.compile(r"[a-z][a-z0-9_]{2,40}")


def scratch_tag(kind: str) -> str:
    """A new tag: `kind` and a random suffix (`kind` is lowercase letters, digits, `_`)."""
    tag = f"{kind}_{uuid.uuid4().hex[:8]}"
    if not _TAG.fullmatch(tag):
        raise ValueError(f"a scratch run's kind must be short lowercase words: {kind!r}")
    return tag


def scratch_names(tag: str, duckdb_path: Path) -> dict[str, object]:
    """Every store name of the run tagged `tag`, as Settings fields."""
    dashed = tag.replace("_", "-")
    return {
        "database_schema": tag,
        "redis_prefix": f"{dashed}:",
        "search_index_prefix": dashed,
        "s3_bucket": dashed,
        "duckdb_path": duckdb_path,
        # the DuckLake backend (when a run turns it on): its own catalog schema, and its
        # files under a prefix of the run's own bucket
        "lake_metadata_schema": f"{tag}_lake",
        "lake_bucket": dashed,
        "lake_prefix": "lake/",
        "broker_prefix": f"{dashed}.",
    }


def scratch_env(settings: Settings) -> dict[str, str]:
    """The run's names as POLYSHOP_* variables, for the app processes a run starts."""
    return {
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
        "POLYSHOP_REDIS_PREFIX": settings.redis_prefix,
        "POLYSHOP_SEARCH_INDEX_PREFIX": settings.search_index_prefix,
        "POLYSHOP_S3_BUCKET": settings.s3_bucket,
        "POLYSHOP_DUCKDB_PATH": str(settings.duckdb_path),
        "POLYSHOP_LAKE_METADATA_SCHEMA": settings.lake_metadata_schema,
        "POLYSHOP_LAKE_BUCKET": settings.lake_bucket,
        "POLYSHOP_LAKE_PREFIX": settings.lake_prefix,
        "POLYSHOP_BROKER_PREFIX": settings.broker_prefix,
    }


@contextlib.asynccontextmanager
async def scratch_stores(settings: Settings) -> AsyncIterator[Settings]:
    """Create the run's schema at the migrations' heads; on exit drop everything the run
    may have made."""
    await asyncio.to_thread(
        migrate.create_schema_at_heads, settings.database_url, settings.database_schema
    )
    try:
        yield settings
    finally:
        await drop_scratch_state(settings)


async def drop_scratch_state(settings: Settings) -> None:
    """Remove the run's schemas, keys, indices, queues, bucket and DuckDB file, each store
    at the same time. A store the run stopped on purpose (a fault test) is skipped: its
    names die with the run's tag."""
    results = await asyncio.gather(
        _drop_schemas(settings),
        _drop_keys(settings),
        drop_scratch_indices(settings),
        _drop_topology(settings),
        _drop_bucket(settings),
        asyncio.to_thread(Path(settings.duckdb_path).unlink, missing_ok=True),
        return_exceptions=True,  # every removal runs to its end before an error is raised
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _drop_schemas(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as c:
        await c.execute(
            f'DROP SCHEMA IF EXISTS "{settings.database_schema}",'
            f' "{settings.lake_metadata_schema}" CASCADE'
        )


async def _drop_keys(settings: Settings) -> None:
    redis = create_redis(settings.redis_url, timeout_s=2)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
    except Exception:
        pass
    finally:
        await redis.aclose()


async def _drop_topology(settings: Settings) -> None:
    with contextlib.suppress(Exception):
        await delete_topology(
            settings.broker_url.get_secret_value(),
            Topology(settings.broker_prefix, settings.broker_delivery_limit),
            timeout_s=3,
        )


async def _drop_bucket(settings: Settings) -> None:
    with contextlib.suppress(Exception):
        await asyncio.to_thread(remove_bucket, create_blob_client(settings), settings.s3_bucket)


async def drop_scratch_indices(settings: Settings) -> None:
    """The run's indices on `settings`' engine (a run that uses both engines calls it for
    the other one too); an engine that is down is skipped."""
    engine = create_search_engine(settings.search_engine, settings.search_url)
    try:
        # by name: Elasticsearch refuses a wildcard delete (destructive_requires_name)
        names = await engine.indices_matching(f"{settings.search_index_prefix}*")
        await engine.delete_indices(names)
    except Exception:
        pass
    finally:
        await engine.close()
