"""Drift repair: compare (id, version) between Postgres and the index, batch by batch,
and re-sync every id that differs.

The outbox makes drift rare (a lost index, a restored snapshot, a bug); this job makes
it temporary. It walks the searchable rows in id order; for each id range it reads the
index's (id, _version) pairs for the same range, so documents that should not be there
are found as well as missing and stale ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from search.engine import SearchEngine, SearchRequestError
from search.index_admin import alias_name
from search.sync import sync_ids

log = structlog.get_logger()

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]

BATCH_SIZE = 1000


@dataclass
class DriftReport:
    checked: int = 0
    missing: int = 0  # searchable in Postgres, absent from the index
    stale: int = 0  # in both, versions differ
    extra: int = 0  # in the index, not searchable in Postgres
    repaired_ids: list[int] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return self.missing + self.stale + self.extra


async def index_versions(
    engine: SearchEngine, index: str, after_id: int, up_to_id: int | None
) -> dict[int, int]:
    """id -> _version of the documents with after_id < id <= up_to_id."""
    bounds: dict[str, int] = {"gt": after_id}
    if up_to_id is not None:
        bounds["lte"] = up_to_id
    found: dict[int, int] = {}
    search_after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "query": {"range": {"id": bounds}},
            "sort": [{"id": "asc"}],
            "_source": False,
            "version": True,
            "size": BATCH_SIZE,
            "track_total_hits": False,
        }
        if search_after is not None:
            body["search_after"] = search_after
        hits = (await engine.search(index, body))["hits"]["hits"]
        for hit in hits:
            found[int(hit["_id"])] = int(hit["_version"])
        if len(hits) < BATCH_SIZE:
            return found
        search_after = hits[-1]["sort"]


async def reconcile(
    pg: PgPool,
    engine: SearchEngine,
    prefix: str,
    *,
    batch_size: int = BATCH_SIZE,
    on_visible: Callable[[], Awaitable[object]] | None = None,
) -> DriftReport:
    """Compare and repair. `on_visible` (the search cache's generation bump) runs after a
    repair, once a refresh has made it visible."""
    index = alias_name(prefix)
    report = DriftReport()
    try:
        await engine.refresh(index)  # compare against everything written so far
    except SearchRequestError as exc:
        if exc.status != 404:
            raise
        log.info("search.reconcile.no_index", alias=index)
        return report
    after_id = 0
    while True:
        async with pg.connection() as conn:
            cur = await conn.execute(
                "SELECT id, version FROM products"
                " WHERE deleted_at IS NULL AND status = 'active' AND id > %s"
                " ORDER BY id LIMIT %s",
                (after_id, batch_size),
            )
            rows = await cur.fetchall()
        db = {int(r["id"]): int(r["version"]) for r in rows}
        last_batch = len(rows) < batch_size
        up_to = None if last_batch else rows[-1]["id"]
        indexed = await index_versions(engine, index, after_id, up_to)
        report.checked += len(db)

        repair: dict[int, int] = {}
        for product_id, version in db.items():
            have = indexed.get(product_id)
            if have is None:
                report.missing += 1
                repair[product_id] = version
            elif have != version:
                report.stale += 1
                repair[product_id] = version
        for product_id, version in indexed.items():
            if product_id not in db:
                report.extra += 1
                # a vanished row is deleted above the indexed version (external versions)
                repair[product_id] = version + 1
        if repair:
            async with pg.connection() as conn:
                await sync_ids(conn, engine, index, repair, require_alias=True)
            report.repaired_ids.extend(sorted(repair))
        if last_batch:
            break
        after_id = rows[-1]["id"]
    if report.repaired_ids and on_visible is not None:
        await engine.refresh(index)
        await on_visible()
    log.info(
        "search.reconciled",
        checked=report.checked,
        missing=report.missing,
        stale=report.stale,
        extra=report.extra,
    )
    return report
