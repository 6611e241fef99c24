"""Orders and their lines: placing an order reserves stock atomically, cancelling gives
it back, and a small state machine moves orders along.

Every function runs inside the caller's transaction and writes the outbox events of its
changes there too: one `order.*` event per order change and one `product.upserted` event
(with the product's new row version) per product whose stock moved, so the cache and
the search index see stock changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection

from storage import outbox, products

MAX_MINOR = 2**63 - 1  # orders.total_minor is a bigint
AGGREGATE = "order"  # the outbox's name for orders (their events carry the order's version)
Status = Literal["pending", "paid", "shipped", "cancelled"]

# Which status may follow which. Asking for the current status again is a no-op.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset(),
    "cancelled": frozenset(),
}


class OrderError(Exception):
    """A request the data does not allow; the API turns each kind into a 4xx."""


class UnknownProduct(OrderError):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} does not exist")
        self.product_id = product_id


class ProductNotForSale(OrderError):
    def __init__(self, product_id: int, sku: str, status: str) -> None:
        super().__init__(f"product {product_id} ({sku}) is {status}, not for sale")
        self.product_id, self.sku, self.status = product_id, sku, status


class InsufficientStock(OrderError):
    def __init__(self, product_id: int, sku: str, requested: int, available: int) -> None:
        super().__init__(
            f"product {product_id} ({sku}): {requested} requested, {available} in stock"
        )
        self.product_id, self.sku = product_id, sku
        self.requested, self.available = requested, available


class MixedCurrencies(OrderError):
    def __init__(self, currencies: Iterable[str]) -> None:
        self.currencies = sorted(set(currencies))
        super().__init__(f"one order takes one currency, got {', '.join(self.currencies)}")


class TotalTooLarge(OrderError):
    def __init__(self, total_minor: int) -> None:
        super().__init__(f"the order total {total_minor} (minor units) is too large")
        self.total_minor = total_minor


class IllegalTransition(OrderError):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"an order that is {current} cannot become {target}")
        self.current, self.target = current, target


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    currency: str

    @property
    def line_total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True)
class Order:
    id: int
    customer_id: int
    status: Status
    currency: str
    total_minor: int
    version: int
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLine] = field(default_factory=list)


@dataclass(frozen=True)
class OrderChange:
    """An order after a write, whether it changed, and the (product id, new version) of
    every product whose stock moved: the caller invalidates their cached reads."""

    order: Order
    changed: bool
    product_versions: list[tuple[int, int]] = field(default_factory=list)


def merge_items(items: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sum the quantities of lines naming the same product; sorted by product id, which
    is also the order the rows get locked in, so two orders never deadlock."""
    merged: dict[int, int] = {}
    for product_id, quantity in items:
        merged[product_id] = merged.get(product_id, 0) + quantity
    return sorted(merged.items())


def check_transition(current: str, target: str) -> bool:
    """True if `target` changes the order, False for a no-op; IllegalTransition otherwise."""
    if current == target:
        return False
    if target not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, target)
    return True


async def place(
    conn: AsyncConnection[Any], *, customer_id: int, items: Sequence[tuple[int, int]]
) -> OrderChange:
    """Reserve the stock of every line and record the order at today's prices."""
    lines: list[OrderLine] = []
    versions: list[tuple[int, int]] = []
    for product_id, quantity in merge_items(items):
        # The guard in WHERE makes the check and the decrement one atomic step: the row
        # lock serialises buyers, and a buyer who would go below zero updates nothing.
        cur = await conn.execute(
            """
            UPDATE products
               SET stock = stock - %(q)s, version = version + 1, updated_at = now()
             WHERE id = %(id)s AND stock >= %(q)s AND deleted_at IS NULL AND status = 'active'
            RETURNING sku, name, price_minor, currency, version, stock
            """,
            {"id": product_id, "q": quantity},
        )
        row = _dict(cur, await cur.fetchone())
        if row is None:
            await _explain_refusal(conn, product_id, quantity)
        assert row is not None
        lines.append(
            OrderLine(
                product_id=product_id,
                sku=row["sku"],
                name=row["name"],
                quantity=quantity,
                unit_price_minor=row["price_minor"],
                currency=row["currency"],
            )
        )
        versions.append((product_id, row["version"]))
        await _emit_stock_change(conn, product_id, row, "order.placed")
    currencies = {line.currency for line in lines}
    if len(currencies) > 1:
        raise MixedCurrencies(currencies)
    currency = currencies.pop()
    total = sum(line.line_total_minor for line in lines)
    if total > MAX_MINOR:
        raise TotalTooLarge(total)
    cur = await conn.execute(
        "INSERT INTO orders (customer_id, currency, total_minor) VALUES (%s, %s, %s)"
        " RETURNING id, customer_id, status, currency, total_minor, version,"
        " created_at, updated_at",
        (customer_id, currency, total),
    )
    order_row = _dict(cur, await cur.fetchone())
    assert order_row is not None
    await conn.execute(
        """
        INSERT INTO order_lines
               (order_id, line_no, product_id, sku, name, quantity, unit_price_minor, currency)
        SELECT %s, n, product_id, sku, name, quantity, unit_price_minor, %s
          FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::bigint[])
               WITH ORDINALITY AS l(product_id, sku, name, quantity, unit_price_minor, n)
        """,
        (
            order_row["id"],
            currency,
            [line.product_id for line in lines],
            [line.sku for line in lines],
            [line.name for line in lines],
            [line.quantity for line in lines],
            [line.unit_price_minor for line in lines],
        ),
    )
    order = _order(order_row, lines)
    await _emit_order(conn, order, "order.created")
    return OrderChange(order, True, versions)


async def _explain_refusal(conn: AsyncConnection[Any], product_id: int, quantity: int) -> None:
    """Raise the reason a guarded stock update matched no row."""
    cur = await conn.execute(
        "SELECT sku, stock, status, deleted_at FROM products WHERE id = %s", (product_id,)
    )
    row = _dict(cur, await cur.fetchone())
    if row is None or row["deleted_at"] is not None:
        raise UnknownProduct(product_id)
    if row["status"] != "active":
        raise ProductNotForSale(product_id, row["sku"], row["status"])
    raise InsufficientStock(product_id, row["sku"], quantity, row["stock"])


async def get(conn: AsyncConnection[Any], order_id: int, *, lock: bool = False) -> Order | None:
    if not lock:
        return await _read(conn, order_id)
    cur = await conn.execute(
        "SELECT id, customer_id, status, currency, total_minor, version, created_at, updated_at"
        " FROM orders WHERE id = %s FOR UPDATE",
        (order_id,),
    )
    row = _dict(cur, await cur.fetchone())
    if row is None:
        return None
    lines = await _lines(conn, [order_id])
    return _order(row, lines.get(order_id, []))


async def _read(conn: AsyncConnection[Any], order_id: int) -> Order | None:
    """The order and its lines in one statement (one round trip: the authenticated read
    of issue 19's hot path), one row per line, the order's columns repeated."""
    cur = await conn.execute(
        "SELECT o.id, o.customer_id, o.status, o.currency, o.total_minor, o.version,"
        " o.created_at, o.updated_at, l.product_id, l.sku, l.name, l.quantity,"
        " l.unit_price_minor, l.currency AS line_currency"
        " FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id"
        " WHERE o.id = %s ORDER BY l.line_no",
        (order_id,),
    )
    rows = [_dict(cur, raw) for raw in await cur.fetchall()]
    if not rows or rows[0] is None:
        return None
    lines = [
        _line(row, row["line_currency"])
        for row in rows
        if row is not None and row["product_id"] is not None  # no line: LEFT JOIN's nulls
    ]
    return _order(rows[0], lines)


async def get_many(conn: AsyncConnection[Any], order_ids: Sequence[int]) -> dict[int, Order]:
    """The orders of `order_ids` that exist, by id: two round trips whatever their number."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    cur = await conn.execute(
        "SELECT id, customer_id, status, currency, total_minor, version, created_at, updated_at"
        " FROM orders WHERE id = ANY(%s)",
        (ids,),
    )
    rows = [_dict(cur, raw) for raw in await cur.fetchall()]
    lines = await _lines(conn, ids)
    return {r["id"]: _order(r, lines.get(r["id"], [])) for r in rows if r is not None}


async def history(
    conn: AsyncConnection[Any],
    *,
    customer_id: int | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Order]:
    """Newest first, keyset-paginated on (created_at, id): `after` is the last order seen."""
    where: list[str] = []
    params: list[Any] = []
    if customer_id is not None:
        where.append("customer_id = %s")
        params.append(customer_id)
    if after is not None:
        where.append("(created_at, id) < (%s, %s)")
        params.extend(after)
    sql = (
        "SELECT id, customer_id, status, currency, total_minor, version, created_at, updated_at"
        " FROM orders"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY created_at DESC, id DESC LIMIT %s"
    )
    cur = await conn.execute(sql, (*params, limit))
    rows = [_dict(cur, r) for r in await cur.fetchall()]
    lines = await _lines(conn, [r["id"] for r in rows if r is not None])
    return [_order(r, lines.get(r["id"], [])) for r in rows if r is not None]


async def change_status(
    conn: AsyncConnection[Any], order_id: int, target: Status, *, customer_id: int | None = None
) -> OrderChange | None:
    """Move an order to `target` (cancelling gives its stock back). None if there is no
    such order (or it is not `customer_id`'s)."""
    order = await get(conn, order_id, lock=True)
    if order is None or (customer_id is not None and order.customer_id != customer_id):
        return None
    if not check_transition(order.status, target):
        return OrderChange(order, False)
    versions = await _restock(conn, order) if target == "cancelled" else []
    cur = await conn.execute(
        "UPDATE orders SET status = %s, version = version + 1, updated_at = now()"
        " WHERE id = %s RETURNING id, customer_id, status, currency, total_minor, version,"
        " created_at, updated_at",
        (target, order_id),
    )
    row = _dict(cur, await cur.fetchone())
    assert row is not None
    changed = _order(row, order.lines)
    await _emit_order(conn, changed, f"order.{target}")
    return OrderChange(changed, True, versions)


async def _restock(conn: AsyncConnection[Any], order: Order) -> list[tuple[int, int]]:
    """Give a cancelled order's stock back, rows locked in product-id order as in `place`.
    A product deleted since still gets its stock back (its row stays, soft-deleted)."""
    versions: list[tuple[int, int]] = []
    for product_id, quantity in merge_items((ln.product_id, ln.quantity) for ln in order.lines):
        cur = await conn.execute(
            "UPDATE products SET stock = stock + %s, version = version + 1, updated_at = now()"
            " WHERE id = %s RETURNING version, stock",
            (quantity, product_id),
        )
        row = _dict(cur, await cur.fetchone())
        if row is None:
            continue
        versions.append((product_id, row["version"]))
        await _emit_stock_change(conn, product_id, row, "order.cancelled")
    return versions


async def _lines(conn: AsyncConnection[Any], order_ids: list[int]) -> dict[int, list[OrderLine]]:
    if not order_ids:
        return {}
    cur = await conn.execute(
        "SELECT order_id, product_id, sku, name, quantity, unit_price_minor, currency"
        " FROM order_lines WHERE order_id = ANY(%s) ORDER BY order_id, line_no",
        (order_ids,),
    )
    result: dict[int, list[OrderLine]] = {}
    for raw in await cur.fetchall():
        row = _dict(cur, raw)
        assert row is not None
        result.setdefault(row["order_id"], []).append(_line(row, row["currency"]))
    return result


def _line(row: dict[str, Any], currency: str) -> OrderLine:
    return OrderLine(
        product_id=row["product_id"],
        sku=row["sku"],
        name=row["name"],
        quantity=row["quantity"],
        unit_price_minor=row["unit_price_minor"],
        currency=currency.strip(),
    )


async def _emit_order(conn: AsyncConnection[Any], order: Order, event_type: str) -> None:
    await outbox.emit(
        conn,
        aggregate=AGGREGATE,
        aggregate_id=order.id,
        event_type=event_type,
        version=order.version,
        payload={
            "status": order.status,
            "customer_id": order.customer_id,
            "total_minor": order.total_minor,
            "currency": order.currency,
        },
    )


def _order(row: dict[str, Any], lines: list[OrderLine]) -> Order:
    return Order(
        id=row["id"],
        customer_id=row["customer_id"],
        status=row["status"],
        currency=row["currency"].strip(),
        total_minor=row["total_minor"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        lines=lines,
    )


def _dict(cur: Any, row: Any) -> dict[str, Any] | None:
    """Rows as dicts whatever the connection's row factory."""
    if row is None or isinstance(row, dict):
        return row
    return {col.name: value for col, value in zip(cur.description, row, strict=True)}


async def _emit_stock_change(
    conn: AsyncConnection[Any], product_id: int, row: dict[str, Any], cause: str
) -> None:
    """A stock change is a product change: caches and the index see the new version."""
    await products.emit_event(
        conn, product_id, products.UPSERTED, row["version"], {"stock": row["stock"], "cause": cause}
    )


async def queue(conn: AsyncConnection[Any], *, statuses: Sequence[str], limit: int) -> list[Order]:
    """Orders in one of `statuses`, oldest first: the warehouse's work queue."""
    cur = await conn.execute(
        "SELECT id, customer_id, status, currency, total_minor, version, created_at, updated_at"
        " FROM orders WHERE status = ANY(%s) ORDER BY created_at, id LIMIT %s",
        (list(statuses), limit),
    )
    rows = [_dict(cur, r) for r in await cur.fetchall()]
    lines = await _lines(conn, [r["id"] for r in rows if r is not None])
    return [_order(r, lines.get(r["id"], [])) for r in rows if r is not None]
