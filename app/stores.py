"""The clients of every store, created once per process and closed on shutdown."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from minio import Minio
from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from analytics.duck import AnalyticsStore, SandboxLimits, create_analytics_store
from analytics.lake import LakeConfig, LakeStore
from app.metrics import (
    CACHE_BREAKER_STATE,
    CACHE_FILLS,
    CACHE_REQUESTS,
    LIST_CACHE_BUMPS,
    LIST_CACHE_REQUESTS,
    ORDER_CACHE_REQUESTS,
    SEARCH_CACHE_BUMPS,
    SEARCH_CACHE_FILLS,
    SEARCH_CACHE_REQUESTS,
)
from app.product_list_cache import NAMESPACE as LIST_NAMESPACE
from app.search_request_keys import SearchRequestKeys
from app.settings import Settings
from search import cache as search_cache
from search.cache import SearchCache
from search.engine import SearchEngine, create_search_engine
from search.index_admin import alias_name
from search.product_search import ProductSearch
from storage import orders, outbox, products
from storage.answer_cache import AnswerCache
from storage.api_keys import ApiKeyCache
from storage.blobs import create_minio
from storage.cache import create_redis
from storage.generation import read_generation
from storage.postgres import create_pool, read_connection
from storage.product_cache import CacheResult, FillResult, ProductCache
from storage.redis_breaker import BreakerState
from storage.redis_errors import LoopLag

log = structlog.get_logger()

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]

# The outbox consumer that invalidates the product cache (app.cache_consumer); the
# cache's catch-up reads what this consumer has not delivered yet.
CACHE_CONSUMER = "cache"
ORDER_KIND = "order"  # the order cache's keys: `order:{generation}:{id}`
_BREAKER_GAUGE: dict[BreakerState, int] = {"closed": 0, "half-opened": 1, "opened": 2}


@dataclass
class Stores:
    """Every client of one process, and the product cache built on them (it holds
    per-process state: the single-flight table and the circuit breaker)."""

    settings: Settings
    pg: PgPool
    redis: Redis
    search: SearchEngine
    blobs: Minio
    analytics: AnalyticsStore | LakeStore
    product_cache: ProductCache
    api_keys: ApiKeyCache
    search_cache: SearchCache
    # the one search service (API routes and storefront pages), on `search_cache`
    product_search: ProductSearch
    # the order read's responses (app/order_cache.py): the product cache's rules, keys of
    # kind "order", invalidated from the outbox's order events
    order_cache: ProductCache
    # the product list pages' responses (app/product_list_cache.py), bumped by every
    # product write
    product_list_cache: AnswerCache
    # which search cache entry each query string led to (app/search_request_keys.py): the
    # thin search routes' lookup
    search_request_keys: SearchRequestKeys = field(default_factory=SearchRequestKeys)
    # how late this process's event loop has been (storage/redis_errors.py): the rate
    # limiter and the cache breaker tell a busy process from a slow Redis with it
    loop_lag: LoopLag = field(default_factory=LoopLag)


def _labelled(counter: Any) -> Callable[..., None]:
    """`inc(*labels)` of `counter`, each labelled child looked up once (`.labels()` per
    read showed in the profile)."""
    children: dict[tuple[str, ...], Any] = {}

    def inc(*labels: str) -> None:
        child = children.get(labels)
        if child is None:
            child = children[labels] = counter.labels(*labels)
        child.inc()

    return inc


_count_cache_result: Callable[[CacheResult], None] = _labelled(CACHE_REQUESTS)


_count_order_cache_result: Callable[[CacheResult], None] = _labelled(ORDER_CACHE_REQUESTS)


def _count_fill(result: FillResult) -> None:
    CACHE_FILLS.labels(result).inc()


def _export_breaker(state: BreakerState) -> None:
    CACHE_BREAKER_STATE.set(_BREAKER_GAUGE[state])


def create_product_cache(
    settings: Settings, pg: PgPool, redis: Redis, lag: LoopLag | None = None
) -> ProductCache:
    """The product read cache on these clients (one per process; tests make more to
    play other replicas)."""
    return _response_cache(
        settings,
        pg,
        redis,
        lag,
        kind="product",
        aggregate=products.AGGREGATE,
        on_result=_count_cache_result,
        on_breaker_state=_export_breaker,
        on_fill=_count_fill,
    )


def create_order_cache(
    settings: Settings, pg: PgPool, redis: Redis, lag: LoopLag | None = None
) -> ProductCache:
    """The order read cache on these clients: the same cache, keys of kind "order",
    caught up from the outbox's order events (its own lookups counted apart)."""
    return _response_cache(
        settings, pg, redis, lag, kind=ORDER_KIND, aggregate=orders.AGGREGATE,
        on_result=_count_order_cache_result,
    )  # fmt: skip


def _response_cache(
    settings: Settings,
    pg: PgPool,
    redis: Redis,
    lag: LoopLag | None,
    *,
    kind: str,
    aggregate: str,
    on_result: Callable[[CacheResult], None],
    on_breaker_state: Callable[[BreakerState], None] | None = None,
    on_fill: Callable[[FillResult], None] | None = None,
) -> ProductCache:
    async def undelivered() -> list[tuple[int, int]]:
        async with read_connection(pg) as conn:
            return await outbox.undelivered(conn, CACHE_CONSUMER, aggregate)

    async def generation() -> str:
        async with read_connection(pg) as conn:
            return await read_generation(conn)

    hooks: dict[str, Any] = {}
    if on_breaker_state is not None:
        hooks["on_breaker_state"] = on_breaker_state
    if on_fill is not None:
        hooks["on_fill"] = on_fill
    return ProductCache(
        redis,
        prefix=settings.redis_prefix,
        ttl_s=settings.cache_ttl_s,
        ttl_jitter=settings.cache_ttl_jitter,
        lease_ms=settings.cache_lease_ms,
        lease_wait_ms=settings.cache_lease_wait_ms,
        breaker_threshold=settings.cache_breaker_threshold,
        breaker_open_s=settings.cache_breaker_open_s,
        on_result=on_result,
        catch_up=undelivered,
        generation=generation,
        generation_check_s=settings.cache_generation_check_s,
        floor_ttl_ms=int(settings.cache_floor_ttl_s * 1000),
        loop_lag=lag,
        redis_timeout_s=settings.redis_timeout_s,
        kind=kind,
        **hooks,
    )


_count_search_result: Callable[[str, search_cache.CacheResult], None] = _labelled(
    SEARCH_CACHE_REQUESTS
)


def _count_search_fill(result: search_cache.FillResult) -> None:
    SEARCH_CACHE_FILLS.labels(result).inc()


def _answer_cache_options(settings: Settings, lag: LoopLag | None) -> dict[str, Any]:
    """What every answer cache (storage/answer_cache.py) of a process shares: the prefix,
    the breaker's settings, the loop monitor."""
    return {
        "prefix": settings.redis_prefix,
        "breaker_threshold": settings.cache_breaker_threshold,
        "breaker_open_s": settings.cache_breaker_open_s,
        "redis_timeout_s": settings.redis_timeout_s,
        "loop_lag": lag,
    }


def create_search_cache(
    settings: Settings, redis: Redis, lag: LoopLag | None = None
) -> SearchCache:
    """The search answer cache on this Redis client (one per process)."""
    return SearchCache(
        redis,
        ttl_s=settings.search_cache_ttl_s,
        on_result=_count_search_result,
        on_fill=_count_search_fill,
        **_answer_cache_options(settings, lag),
    )


_count_list = _labelled(LIST_CACHE_REQUESTS)


def _count_list_result(kind: str, result: CacheResult) -> None:
    _count_list(result)  # one kind of answer: the result is the only label


def _count_list_bump(bumped: bool) -> None:
    """A writer's bump after its commit (an API request or a storefront page). A failed
    one is logged: the outbox relay bumps again."""
    if bumped:
        LIST_CACHE_BUMPS.labels("request").inc()
    else:
        LIST_CACHE_BUMPS.labels("failed").inc()
        log.warning("product_list_cache.bump_failed")


def create_product_list_cache(
    settings: Settings, redis: Redis, lag: LoopLag | None = None
) -> AnswerCache:
    """The product list pages' cache on this Redis client (one per process;
    app/product_list_cache.py)."""
    return AnswerCache(
        redis,
        namespace=LIST_NAMESPACE,
        ttl_s=settings.product_list_cache_ttl_s,
        on_result=_count_list_result,
        on_try_bump=_count_list_bump,
        **_answer_cache_options(settings, lag),
    )


async def bump_search_generation(cache: SearchCache) -> None:
    """The sync's `on_visible`: a new search generation, counted."""
    await cache.bump()
    SEARCH_CACHE_BUMPS.inc()


def lake_config(settings: Settings) -> LakeConfig | None:
    """Where the DuckLake lives, when it is the analytical copy's backend, with the
    writer's credentials (the ETL, maintenance)."""
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
        reader_role=settings.lake_reader_database_user,
    )


def lake_reader_config(settings: Settings) -> LakeConfig | None:
    """The lake as its readers (API replicas) see it: the readers' S3 key and Postgres
    role where they are set, which cannot write the data nor the catalog."""
    lake = lake_config(settings)
    if lake is None:
        return None
    catalog_url = lake.catalog_url
    if settings.lake_reader_database_user:
        password = settings.lake_reader_database_password
        catalog_url = make_conninfo(
            catalog_url,
            user=settings.lake_reader_database_user,
            password=password.get_secret_value() if password else None,
        )
    s3_key, s3_secret = lake.s3_access_key, lake.s3_secret_key
    if settings.lake_reader_s3_access_key:
        secret = settings.lake_reader_s3_secret_key
        s3_key = settings.lake_reader_s3_access_key
        s3_secret = secret.get_secret_value() if secret else ""
    return dataclasses.replace(
        lake,
        catalog_url=catalog_url,
        s3_access_key=s3_key,
        s3_secret_key=s3_secret,
        reader_role=None,
    )


def create_analytics(settings: Settings) -> AnalyticsStore | LakeStore:
    limits = SandboxLimits(settings.analytics_memory_limit, settings.analytics_threads)
    lake = lake_reader_config(settings)
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


StoresFactory = Callable[[Settings], contextlib.AbstractAsyncContextManager["Stores"]]


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
    redis = create_redis(
        settings.redis_url,
        timeout_s=settings.redis_timeout_s,
        max_connections=settings.redis_max_connections,
    )
    search = create_search_engine(
        settings.search_engine, settings.search_url, timeout_s=settings.search_timeout_s
    )
    blobs = create_blob_client(settings)
    analytics = create_analytics(settings)
    lag = LoopLag()
    cache = create_product_cache(settings, pg, redis, lag)
    keys = ApiKeyCache(settings.api_key_cache_ttl_s)
    answers = create_search_cache(settings, redis, lag)
    searcher = ProductSearch(search, alias_name(settings.search_index_prefix), answers)
    order_cache = create_order_cache(settings, pg, redis, lag)
    lists = create_product_list_cache(settings, redis, lag)
    stores = Stores(
        settings,
        pg,
        redis,
        search,
        blobs,
        analytics,
        cache,
        keys,
        answers,
        searcher,
        order_cache,
        lists,
        loop_lag=lag,
    )
    log.info("stores.opened", search_engine=settings.search_engine, schema=settings.database_schema)
    try:
        async with lag.running():
            yield stores
    finally:
        await search.close()
        await redis.aclose()
        await pg.close()
        analytics.close()
        log.info("stores.closed")
