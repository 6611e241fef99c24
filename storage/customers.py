"""Customers: the people who place orders. A customer API key points at one of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection


@dataclass(frozen=True)
class Customer:
    id: int
    email: str
    name: str
    country: str | None
    created_at: datetime


_COLUMNS = "id, email, name, country, created_at"


def _customer(row: dict[str, Any]) -> Customer:
    return Customer(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        country=row["country"],
        created_at=row["created_at"],
    )


async def create(
    conn: AsyncConnection[Any], *, email: str, name: str, country: str | None = None
) -> Customer:
    """Insert a customer; an email already taken raises psycopg.errors.UniqueViolation."""
    cur = await conn.execute(
        f"INSERT INTO customers (email, name, country) VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
        (email, name, country),
    )
    row = await cur.fetchone()
    assert row is not None
    return _customer(_as_dict(cur, row))


async def get(conn: AsyncConnection[Any], customer_id: int) -> Customer | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM customers WHERE id = %s", (customer_id,))
    row = await cur.fetchone()
    return None if row is None else _customer(_as_dict(cur, row))


async def get_many(conn: AsyncConnection[Any], customer_ids: Iterable[int]) -> dict[int, Customer]:
    """The customers of `customer_ids` that exist, by id, in one round trip."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM customers WHERE id = ANY(%s)", (ids,))
    found = (_customer(_as_dict(cur, row)) for row in await cur.fetchall())
    return {c.id: c for c in found}


async def by_email(conn: AsyncConnection[Any], email: str) -> Customer | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM customers WHERE email = %s", (email,))
    row = await cur.fetchone()
    return None if row is None else _customer(_as_dict(cur, row))


def _as_dict(cur: Any, row: Any) -> dict[str, Any]:
    """Rows as dicts whatever the connection's row factory (pool: dict_row; CLI: tuples)."""
    if isinstance(row, dict):
        return row
    return {col.name: value for col, value in zip(cur.description, row, strict=True)}


async def set_password_hash(conn: AsyncConnection[Any], customer_id: int, stored: str) -> bool:
    """Store a customer's password hash (kit/passwords.py makes it); False: no customer."""
    cur = await conn.execute(
        "UPDATE customers SET password_hash = %s, updated_at = now() WHERE id = %s",
        (stored, customer_id),
    )
    return cur.rowcount == 1


async def credentials(conn: AsyncConnection[Any], email: str) -> tuple[int, str | None] | None:
    """(id, password hash) of the customer with this e-mail (case-insensitive), or None."""
    cur = await conn.execute(
        "SELECT id, password_hash FROM customers WHERE lower(email) = lower(%s)"
        " ORDER BY id LIMIT 1",
        (email,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    found = _as_dict(cur, row)
    return int(found["id"]), found["password_hash"]


async def password_hash(conn: AsyncConnection[Any], customer_id: int) -> str | None:
    cur = await conn.execute("SELECT password_hash FROM customers WHERE id = %s", (customer_id,))
    row = await cur.fetchone()
    return None if row is None else _as_dict(cur, row)["password_hash"]
