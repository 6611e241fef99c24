"""Index naming and lifecycle: versioned indices behind one alias.

Readers and the live consumer only ever use the alias `<prefix>-products`; the concrete
index is `<prefix>-products-v<mapping version>-<UTC timestamp>`, so a rebuild can fill a
new index and swap the alias atomically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from search.engine import SearchEngine, SearchRequestError
from search.mapping import MAPPING_VERSION, index_mappings, index_settings
from storage import locks

log = structlog.get_logger()

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]

LIVE_REFRESH_INTERVAL = "1s"


def alias_name(prefix: str) -> str:
    return f"{prefix}-products"


def new_index_name(prefix: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%f")
    return f"{alias_name(prefix)}-v{MAPPING_VERSION}-{stamp}"


async def create_index(
    engine: SearchEngine,
    name: str,
    *,
    bulk_load: bool,
    replicas: int = 0,
    aliases: dict[str, Any] | None = None,
) -> None:
    """Create a product index. `bulk_load` turns refresh off and replicas to 0 for a fast
    load; `finish_bulk_load` restores them."""
    settings = index_settings(replicas=0 if bulk_load else replicas)
    settings["refresh_interval"] = "-1" if bulk_load else LIVE_REFRESH_INTERVAL
    await engine.create_index(name, settings=settings, mappings=index_mappings(), aliases=aliases)


async def finish_bulk_load(engine: SearchEngine, name: str, *, replicas: int = 0) -> None:
    await engine.put_index_settings(
        name,
        {"index": {"refresh_interval": LIVE_REFRESH_INTERVAL, "number_of_replicas": replicas}},
    )
    await engine.refresh(name)


async def ensure_alias(engine: SearchEngine, pg: PgPool, prefix: str) -> str:
    """Make sure the alias exists (an empty live index behind it on first use) and return
    its name. Serialised through a Postgres advisory lock, so two workers starting at
    once do not each create an index behind the alias."""
    alias = alias_name(prefix)
    if await engine.alias_targets(alias):
        return alias
    async with pg.connection() as conn, conn.transaction():
        await locks.xact_lock(conn, "search-alias:" + alias)
        if await engine.alias_targets(alias):
            return alias
        name = new_index_name(prefix)
        try:
            await create_index(engine, name, bulk_load=False, aliases={alias: {}})
        except SearchRequestError as exc:
            if exc.error_type != "resource_already_exists_exception":
                raise
        log.info("search.index_created", index=name, alias=alias)
    return alias
