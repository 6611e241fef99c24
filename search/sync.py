"""Bring index documents in line with the CURRENT Postgres rows of some product ids.

Shared by the outbox consumer, the reindex catch-up and the reconcile repair. Events
are only a hint of which ids changed: the rows are re-read, and each write carries the
row version with `version_type=external`, so a stale or duplicate write is refused by
the engine (409) instead of regressing a document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from search.engine import BulkItemResult, SearchEngine
from search.mapping import document, is_searchable

ROW_COLUMNS = (
    "id, sku, name, description, brand, category, price_minor, currency, stock,"
    " attributes, status, rating, version, created_at, updated_at, deleted_at,"
    # popularity: units ordered and not cancelled (order_lines_product index). An order
    # bumps its products' versions, so the document follows it.
    " (SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o"
    " ON o.id = l.order_id WHERE l.product_id = products.id AND o.status <> 'cancelled')"
    " AS popularity"
)


class BulkRefused(Exception):
    """Some bulk items failed for a reason other than a version conflict."""

    def __init__(self, failures: Sequence[BulkItemResult]) -> None:
        first = failures[0]
        super().__init__(
            f"{len(failures)} bulk item(s) failed; first: {first.op} {first.id} "
            f"{first.status} {first.error_type}: {first.reason}"
        )
        self.failures = list(failures)


@dataclass(frozen=True)
class SyncResult:
    indexed: int
    deleted: int
    conflicts: int  # refused because the index already holds that version or a newer one
    absent: int = 0  # deletes of a document that was not there (already deleted)


async def read_rows(
    conn: AsyncConnection[dict[str, Any]], ids: Iterable[int]
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT {ROW_COLUMNS} FROM products WHERE id = ANY(%s)", (sorted(set(ids)),)
    )
    return await cur.fetchall()


def bulk_operations(
    index: str,
    rows: Iterable[Mapping[str, Any]],
    missing: Mapping[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Action lines for `rows` (index if searchable, else delete), plus deletes for ids
    whose row no longer exists (`missing`: id -> the highest version seen in events)."""
    ops: list[dict[str, Any]] = []
    for row in rows:
        meta = {
            "_index": index,
            "_id": str(row["id"]),
            "version": int(row["version"]),
            "version_type": "external",
        }
        if is_searchable(row):
            ops.append({"index": meta})
            ops.append(document(row))
        else:
            ops.append({"delete": meta})
    for product_id, version in (missing or {}).items():
        ops.append(
            {
                "delete": {
                    "_index": index,
                    "_id": str(product_id),
                    "version": int(version),
                    "version_type": "external",
                }
            }
        )
    return ops


async def apply_operations(
    engine: SearchEngine,
    ops: Sequence[Mapping[str, Any]],
    *,
    require_alias: bool = False,
    wait_for_refresh: bool = False,
) -> SyncResult:
    results = await engine.bulk(ops, require_alias=require_alias, wait_for_refresh=wait_for_refresh)
    failures = [r for r in results if not r.ok]
    if failures:
        raise BulkRefused(failures)
    return SyncResult(
        indexed=sum(1 for r in results if r.op == "index" and r.status < 300),
        deleted=sum(1 for r in results if r.op == "delete" and r.status < 300),
        conflicts=sum(1 for r in results if r.status == 409),
        absent=sum(1 for r in results if r.op == "delete" and r.status == 404),
    )


async def sync_ids(
    conn: AsyncConnection[dict[str, Any]],
    engine: SearchEngine,
    index: str,
    versions: Mapping[int, int],
    *,
    require_alias: bool = False,
    wait_for_refresh: bool = False,
) -> SyncResult:
    """Re-read the rows of `versions`' ids and write them to `index`. `versions` maps
    id -> the highest version known for it, used for the delete of a vanished row.
    `wait_for_refresh`: return once the writes are visible to searches."""
    if not versions:
        return SyncResult(0, 0, 0)
    rows = await read_rows(conn, versions)
    found = {row["id"] for row in rows}
    missing = {i: v for i, v in versions.items() if i not in found}
    ops = bulk_operations(index, rows, missing)
    return await apply_operations(
        engine, ops, require_alias=require_alias, wait_for_refresh=wait_for_refresh
    )
