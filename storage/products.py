"""Products in Postgres: every write bumps the row `version` and records its outbox event
in the caller's transaction, so derived stores (cache, search) follow the row exactly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor, errors, sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from storage import outbox
from storage.errors import StorageError

AGGREGATE = "product"
UPSERTED = "product.upserted"
DELETED = "product.deleted"


class ProductNotFound(StorageError):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} not found")
        self.product_id = product_id


class DuplicateSku(StorageError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"a live product already has sku {sku!r}")
        self.sku = sku


class VersionMismatch(StorageError):
    """The row is not at the version the caller expected (If-Match lost)."""

    def __init__(self, product_id: int, expected: int, current: int) -> None:
        super().__init__(f"product {product_id} is at version {current}, not {expected}")
        self.product_id = product_id
        self.expected = expected
        self.current = current


@dataclass(frozen=True)
class Product:
    id: int
    sku: str
    name: str
    description: str
    brand: str
    category: str
    price_minor: int
    currency: str
    stock: int
    attributes: dict[str, str]
    status: str
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProductFilter:
    category: str | None = None  # a path prefix: "Furniture" matches "Furniture/Chairs"
    brand: str | None = None
    min_price_minor: int | None = None
    max_price_minor: int | None = None
    status: str | None = None


# The product's shape is declared once, by the dataclass: the columns every query
# returns and the row factory that builds it both come from it.
_COLUMNS = ", ".join(f.name for f in dataclass_fields(Product))
# what a client may set; the rest the database assigns
WRITABLE = tuple(
    f.name
    for f in dataclass_fields(Product)
    if f.name not in {"id", "version", "created_at", "updated_at"}
)
_AS_PRODUCT = class_row(Product)


async def _query(
    conn: AsyncConnection[Any], query: sql.Composable | str, params: Any
) -> AsyncCursor[Product]:
    cur = conn.cursor(row_factory=_AS_PRODUCT)
    await cur.execute(query, params)  # type: ignore[arg-type]
    return cur


async def create(conn: AsyncConnection[Any], fields: Mapping[str, Any]) -> Product:
    """Insert a product (inside the caller's transaction) and emit product.upserted."""
    values = {k: fields[k] for k in WRITABLE if k in fields}
    if "attributes" in values:
        values["attributes"] = Jsonb(values["attributes"])
    query = sql.SQL("INSERT INTO products ({cols}) VALUES ({vals}) RETURNING {ret}").format(
        cols=sql.SQL(", ").join(sql.Identifier(k) for k in values),
        vals=sql.SQL(", ").join(sql.Placeholder(k) for k in values),
        ret=sql.SQL(_COLUMNS),
    )
    try:
        async with conn.transaction():  # a savepoint: the caller's transaction survives a 409
            cur = await _query(conn, query, values)
    except errors.UniqueViolation as exc:
        raise DuplicateSku(str(fields.get("sku"))) from exc
    product = await cur.fetchone()
    assert product is not None
    await emit_event(conn, product.id, UPSERTED, product.version)
    return product


async def get(conn: AsyncConnection[Any], product_id: int) -> Product | None:
    """The live product, or None if it does not exist or is soft-deleted."""
    cur = await _query(
        conn, f"SELECT {_COLUMNS} FROM products WHERE id = %s AND deleted_at IS NULL", (product_id,)
    )
    return await cur.fetchone()


async def update(
    conn: AsyncConnection[Any],
    product_id: int,
    changes: Mapping[str, Any],
    *,
    expected_version: int | None = None,
) -> Product:
    """Apply `changes` and bump the version. With `expected_version`, the row must still be
    at that version when its lock is taken: a concurrent writer that got there first makes
    this one fail with VersionMismatch instead of silently overwriting it."""
    values = {k: changes[k] for k in WRITABLE if k in changes}
    if "attributes" in values:
        values["attributes"] = Jsonb(values["attributes"])
    sets: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
    ]
    sets += [sql.SQL("version = version + 1"), sql.SQL("updated_at = now()")]
    query = sql.SQL(
        "UPDATE products SET {sets} WHERE id = %(id)s AND deleted_at IS NULL{guard} RETURNING {ret}"
    ).format(
        sets=sql.SQL(", ").join(sets),
        guard=sql.SQL(" AND version = %(expected)s" if expected_version is not None else ""),
        ret=sql.SQL(_COLUMNS),
    )
    params = {**values, "id": product_id, "expected": expected_version}
    try:
        async with conn.transaction():
            cur = await _query(conn, query, params)
    except errors.UniqueViolation as exc:
        raise DuplicateSku(str(changes.get("sku"))) from exc
    product = await cur.fetchone()
    if product is None:
        raise await _why_not_written(conn, product_id, expected_version)
    await emit_event(conn, product.id, UPSERTED, product.version)
    return product


async def delete(
    conn: AsyncConnection[Any], product_id: int, *, expected_version: int | None = None
) -> int:
    """Soft-delete (order lines keep their product); returns the new version."""
    guard = " AND version = %(expected)s" if expected_version is not None else ""
    cur = await conn.execute(
        "UPDATE products SET deleted_at = now(), updated_at = now(), version = version + 1"
        f" WHERE id = %(id)s AND deleted_at IS NULL{guard} RETURNING version",
        {"id": product_id, "expected": expected_version},
    )
    row = await cur.fetchone()
    if row is None:
        raise await _why_not_written(conn, product_id, expected_version)
    version = int(row["version"])
    await emit_event(conn, product_id, DELETED, version)
    return version


async def list_page(
    conn: AsyncConnection[Any],
    *,
    after_id: int | None,
    limit: int,
    where: ProductFilter,
) -> list[Product]:
    """Live products in id order after `after_id` (keyset pagination: no OFFSET scans)."""
    clauses = ["deleted_at IS NULL"]
    params: dict[str, Any] = {"limit": limit}
    if after_id is not None:
        clauses.append("id > %(after)s")
        params["after"] = after_id
    if where.category is not None:
        clauses.append("(category = %(cat)s OR category LIKE %(cat_prefix)s)")
        params["cat"] = where.category
        params["cat_prefix"] = _like_escape(where.category.rstrip("/")) + "/%"
    if where.brand is not None:
        clauses.append("brand = %(brand)s")
        params["brand"] = where.brand
    if where.min_price_minor is not None:
        clauses.append("price_minor >= %(min_price)s")
        params["min_price"] = where.min_price_minor
    if where.max_price_minor is not None:
        clauses.append("price_minor <= %(max_price)s")
        params["max_price"] = where.max_price_minor
    if where.status is not None:
        clauses.append("status = %(status)s")
        params["status"] = where.status
    cur = await _query(
        conn,
        f"SELECT {_COLUMNS} FROM products WHERE {' AND '.join(clauses)}"
        " ORDER BY id LIMIT %(limit)s",
        params,
    )
    return await cur.fetchall()


async def _why_not_written(
    conn: AsyncConnection[Any], product_id: int, expected_version: int | None
) -> StorageError:
    cur = await conn.execute(
        "SELECT version FROM products WHERE id = %s AND deleted_at IS NULL", (product_id,)
    )
    row = await cur.fetchone()
    if row is None or expected_version is None:
        return ProductNotFound(product_id)
    return VersionMismatch(product_id, expected_version, int(row["version"]))


async def emit_event(
    conn: AsyncConnection[Any],
    product_id: int,
    event_type: str,
    version: int,
    payload: dict[str, Any] | None = None,
) -> None:
    """Record a product event in the caller's transaction (every product change, also
    by orders and images, goes through here). Consumers re-read Postgres and the version
    guards the order, so a payload is only ever informational."""
    await outbox.emit(
        conn,
        aggregate=AGGREGATE,
        aggregate_id=product_id,
        event_type=event_type,
        version=version,
        payload=payload,
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
