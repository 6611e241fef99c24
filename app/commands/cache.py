"""`polyshop cache flush`: forget every derived cache entry (step of the restore procedure).

It gives the data a new generation in Postgres (so every replica, at its next check,
reads and writes other keys; storage/generation.py) and then deletes every product
and order cache key of every generation under the prefix: values, version floors and
leases; every search cache key (answers and the search generation, search/cache.py);
and every product list page with the catalog generation (app/product_list_cache.py).
Safe while the API runs: a miss reads Postgres (or asks the engine) again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import psycopg
import typer

from app.settings import Settings, get_settings
from app.stores import ORDER_KIND, create_product_list_cache
from search.cache import SearchCache
from storage.cache import create_redis
from storage.generation import bump_generation
from storage.product_cache import ProductCache

cache_cli = typer.Typer(help="The Redis product cache.", no_args_is_help=True)


@dataclass(frozen=True)
class Flushed:
    generation: str
    removed: int


async def flush_cache(settings: Settings) -> Flushed:
    """Bump the data generation, then delete the cache's keys (in this order: a replica
    that fills between the two fills the old generation, which nobody reads again)."""
    async with await psycopg.AsyncConnection.connect(
        settings.database_url,
        autocommit=True,
        options=f"-c search_path={settings.database_schema}",
        application_name="polyshop-cli-cache",
    ) as conn:
        generation = await bump_generation(conn)
    redis = create_redis(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 5.0))
    try:
        removed = 0
        for kind in ("product", ORDER_KIND):
            cache = ProductCache(
                redis, prefix=settings.redis_prefix, ttl_s=1, ttl_jitter=0, kind=kind
            )
            removed += await cache.flush()
        removed += await SearchCache(redis, prefix=settings.redis_prefix, ttl_s=1).flush()
        removed += await create_product_list_cache(settings, redis).flush()
    finally:
        await redis.aclose()
    return Flushed(generation, removed)


@cache_cli.command("flush")
def flush() -> None:
    """New data generation + delete every product, order, search and list cache key
    (after a restore or failover)."""
    result = asyncio.run(flush_cache(get_settings()))
    typer.echo(f"cache flushed: generation {result.generation}, {result.removed} keys removed")
