"""A benchmark run leaves the shop alone: run small benches with the environment pointing
at "the shop" (this test's schema, prefix, index prefix, bucket, DuckDB file, lake
catalog) and check that not one of its Redis keys, rows, indices, objects or files
changed (bench/isolation.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.settings import Settings, get_settings
from app.stores import Stores
from bench import analytics as bench_analytics
from bench import orders as bench_orders
from bench import search as bench_search
from bench import web as bench_web
from storage.product_cache import Entry

pytestmark = pytest.mark.timeout(600)


async def redis_state(stores: Stores, prefix: str) -> dict[bytes, bytes | None]:
    keys = [k async for k in stores.redis.scan_iter(match=f"{prefix}*", count=1000)]
    return {k: await stores.redis.dump(k) for k in sorted(keys)}


async def test_benches_leave_the_shops_keys_rows_and_indices_untouched(
    settings: Settings, stores: Stores, service_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # "the shop": this test's stores, as the environment (what a bench reads) names them
    for name, value in {
        **service_env,
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
        "POLYSHOP_REDIS_PREFIX": settings.redis_prefix,
        "POLYSHOP_SEARCH_INDEX_PREFIX": settings.search_index_prefix,
        "POLYSHOP_S3_BUCKET": settings.s3_bucket,
        "POLYSHOP_DUCKDB_PATH": str(settings.duckdb_path),
        "POLYSHOP_LAKE_METADATA_SCHEMA": settings.lake_metadata_schema,
        "POLYSHOP_LAKE_BUCKET": settings.lake_bucket,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    assert get_settings().redis_prefix == settings.redis_prefix
    # sentinels where a bench that shares the prefix would write: products 1.., floors
    p = settings.redis_prefix
    for pid in (1, 2, 3):
        await stores.redis.set(f"{p}product:0:{pid}", Entry(1, b"{}").encode())
        await stores.redis.set(f"{p}product:0:{pid}:floor", b"1")
    await stores.redis.set(f"{p}sentinel", b"shop")
    async with stores.pg.connection() as conn:
        await conn.execute(
            "INSERT INTO products (sku, name, price_minor) VALUES ('SHOP-1', 'Shop lamp', 100)"
        )
        await conn.commit()
    before = await redis_state(stores, p)
    indices_before = await stores.search.indices_matching(f"{settings.search_index_prefix}*")
    objects_before = await asyncio.to_thread(_objects, stores, settings.s3_bucket)
    duckdb_before = _file(settings.duckdb_path)

    try:
        await bench_orders.main(orders=6, concurrency=2, skus=3)
        await bench_search.main(n_products=40, n_queries=5, lag_writes=2)
        await bench_web.main(n_products=12, rounds=4)
        small = ["--lines", "400", "--rounds", "1", "--query-rounds", "1", "--no-csv-loader"]
        await asyncio.to_thread(bench_analytics.main, [*small, "--backends", "file,ducklake"])
    finally:
        get_settings.cache_clear()

    assert await redis_state(stores, p) == before
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT sku, version FROM products ORDER BY id")
        rows = await cur.fetchall()
        cur = await conn.execute("SELECT count(*) AS n FROM orders")
        order_count = await cur.fetchone()
    assert [(r["sku"], r["version"]) for r in rows] == [("SHOP-1", 1)]
    assert order_count is not None and order_count["n"] == 0
    assert await stores.search.indices_matching(f"{settings.search_index_prefix}*") == (
        indices_before
    )
    assert await asyncio.to_thread(_objects, stores, settings.s3_bucket) == objects_before
    assert _file(settings.duckdb_path) == duckdb_before  # the analytical copy: not written
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM information_schema.schemata WHERE schema_name = %s",
            (settings.lake_metadata_schema,),
        )
        lake = await cur.fetchone()
    assert lake is not None and lake["n"] == 0  # nor the shop's lake catalog
    # and the benches removed what they made
    leftovers = [k async for k in stores.redis.scan_iter(match="bench-*", count=1000)]
    assert leftovers == []
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM information_schema.schemata"
            " WHERE schema_name ~ '^bench_(web|analytics|orders|search)_'"
        )
        schemas = await cur.fetchone()
    assert schemas is not None and schemas["n"] == 0


def _file(path: Path) -> tuple[int, int] | None:
    """(size, mtime) of a file, None if there is none."""
    return (path.stat().st_size, path.stat().st_mtime_ns) if path.exists() else None


def _objects(stores: Stores, bucket: str) -> list[str]:
    if not stores.blobs.bucket_exists(bucket):
        return []
    return sorted(o.object_name or "" for o in stores.blobs.list_objects(bucket, recursive=True))
