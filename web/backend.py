"""What the pages need from the process: its stores and settings, typed structurally.

The app keeps its `Stores` on `app.state.stores`; web/ must not import `app/`, so these
protocols name only the attributes the pages use (the app's dataclass satisfies them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from fastapi import Request
from minio import Minio
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr
from redis.asyncio import Redis

from analytics.duck import AnalyticsStore
from analytics.lake import LakeStore
from images.context import ImageSettings, ImageStores
from search.engine import SearchEngine
from search.index_admin import alias_name
from search.product_search import ProductSearch
from storage.answer_cache import AnswerCache
from storage.orders import OrderChange
from storage.product_cache import ProductCache

Conn = AsyncConnection[dict[str, Any]]


class WebSettings(ImageSettings, Protocol):
    """The image domain's settings (web/ stores images through images/) and these."""

    @property
    def environment(self) -> str: ...
    @property
    def redis_prefix(self) -> str: ...
    @property
    def search_index_prefix(self) -> str: ...
    @property
    def api_key_pepper(self) -> SecretStr: ...
    @property
    def currencies(self) -> Sequence[str]: ...
    @property
    def cache_ttl_s(self) -> int: ...
    @property
    def duckdb_path(self) -> Path: ...
    @property
    def database_url(self) -> str: ...
    @property
    def database_schema(self) -> str: ...
    @property
    def etl_tables(self) -> str: ...
    @property
    def etl_snapshot_grace_s(self) -> float: ...
    @property
    def etl_threads(self) -> int: ...
    @property
    def etl_memory_limit(self) -> str: ...
    @property
    def analytics_query_timeout_s(self) -> float: ...
    @property
    def analytics_max_rows(self) -> int: ...
    @property
    def membership_reminder_days(self) -> float: ...


class WebStores(ImageStores, Protocol):
    @property
    def settings(self) -> WebSettings: ...
    @property
    def pg(self) -> AsyncConnectionPool[Conn]: ...
    @property
    def redis(self) -> Redis: ...
    @property
    def search(self) -> SearchEngine: ...
    @property
    def blobs(self) -> Minio: ...
    @property
    def analytics(self) -> AnalyticsStore | LakeStore: ...
    @property
    def product_cache(self) -> ProductCache: ...
    @property
    def product_search(self) -> ProductSearch: ...
    @property
    def product_list_cache(self) -> AnswerCache: ...

    @property
    def order_cache(self) -> ProductCache: ...


def get_stores(request: Request) -> WebStores:
    stores: WebStores = request.app.state.stores
    return stores


async def stores_dependency(request: Request) -> WebStores:
    return get_stores(request)


def search_index(stores: WebStores) -> str:
    return alias_name(stores.settings.search_index_prefix)


async def invalidate(request: Request, changes: Sequence[tuple[int, int]]) -> None:
    """After a commit that wrote products: drop their cached JSON (read-your-writes). A
    failed invalidation is applied later by the outbox relay (the write emitted its event)."""
    stores = get_stores(request)
    await stores.product_list_cache.try_bump()  # the relay bumps again if this failed
    for product_id, version in changes:
        await stores.product_cache.invalidate(product_id, version)


async def invalidate_order(request: Request, change: OrderChange) -> None:
    """After a commit that changed an order's status: drop its cached read (the API's
    `GET /orders/{id}`, app/order_cache.py) on every replica before answering. A failed
    invalidation is applied later by the outbox relay (the change emitted its event)."""
    if change.changed:
        await get_stores(request).order_cache.invalidate(change.order.id, change.order.version)
