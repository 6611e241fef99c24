"""Memberships and their reminders in Postgres; every function runs in the caller's
transaction. Times come from the caller's clock, never from `now()`, so tests control
them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection, errors

from memberships.plans import PLANS, Plan
from storage import outbox

AGGREGATE = "membership"
REMINDER_DUE = "membership.reminder_due"
RENEWED = "membership.renewed"

Status = Literal["active", "cancelled"]


class AlreadyActive(Exception):
    """The customer has an active membership of this plan (409)."""


@dataclass(frozen=True)
class Membership:
    id: int
    customer_id: int
    plan: str
    price_minor: int
    currency: str
    status: Status
    started_at: datetime
    renews_at: datetime
    cancelled_at: datetime | None
    version: int
    reminder_due_at: datetime | None  # the scheduled reminder, if any


_COLUMNS = (
    "m.id, m.customer_id, m.plan, m.price_minor, m.currency, m.status, m.started_at,"
    " m.renews_at, m.cancelled_at, m.version,"
    " (SELECT r.due_at FROM membership_reminders r"
    "   WHERE r.membership_id = m.id AND r.status = 'scheduled') AS reminder_due_at"
)


def reminder_due(renews_at: datetime, reminder_days: float) -> datetime:
    return renews_at - timedelta(days=reminder_days)


async def create(
    conn: AsyncConnection[Any],
    *,
    customer_id: int,
    plan: Plan,
    now: datetime,
    renews_at: datetime | None,
    reminder_days: float,
) -> Membership:
    renews = renews_at or now + plan.period
    try:
        async with conn.transaction():  # a savepoint: the unique violation is ours to map
            cur = await conn.execute(
                """
                INSERT INTO memberships
                       (customer_id, plan, price_minor, currency, started_at, renews_at,
                        created_at, updated_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                RETURNING id
                """,
                (customer_id, plan.code, plan.price_minor, plan.currency, now, renews, now, now),
            )
    except errors.UniqueViolation as exc:
        raise AlreadyActive(plan.code) from exc
    row = await cur.fetchone()
    assert row is not None
    membership_id = int(row["id"] if isinstance(row, dict) else row[0])
    await _schedule(conn, membership_id, renews, reminder_days, now)
    found = await get(conn, membership_id)
    assert found is not None
    return found


async def get(
    conn: AsyncConnection[Any], membership_id: int, *, lock: bool = False
) -> Membership | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM memberships m WHERE m.id = %s"
        + (" FOR UPDATE OF m" if lock else ""),
        (membership_id,),
    )
    row = await cur.fetchone()
    return None if row is None else _membership(_dict(cur, row))


ListKey = tuple[int, datetime, int]  # (1 if active else 0, started_at, id): the list order


def list_key(m: Membership) -> ListKey:
    return (1 if m.status == "active" else 0, m.started_at, m.id)


async def for_customer(
    conn: AsyncConnection[Any],
    customer_id: int,
    *,
    after: ListKey | None = None,
    limit: int = 100,
) -> list[Membership]:
    """The customer's memberships, active ones first, then the newest; keyset-paginated
    on `list_key` (`after`: the last one seen). GET /memberships and the account page."""
    where = "m.customer_id = %s"
    params: list[Any] = [customer_id]
    if after is not None:
        where += " AND ((m.status = 'active')::int, m.started_at, m.id) < (%s, %s, %s)"
        params.extend(after)
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM memberships m WHERE {where}"
        " ORDER BY (m.status = 'active')::int DESC, m.started_at DESC, m.id DESC LIMIT %s",
        (*params, limit),
    )
    return [_membership(_dict(cur, row)) for row in await cur.fetchall()]


async def cancel(conn: AsyncConnection[Any], membership_id: int, *, now: datetime) -> Membership:
    """Cancel (idempotent) and drop the scheduled reminder: nothing is sent for it."""
    await conn.execute(
        """
        UPDATE memberships SET status = 'cancelled', cancelled_at = %(now)s,
               version = version + 1, updated_at = %(now)s
         WHERE id = %(id)s AND status = 'active'
        """,
        {"id": membership_id, "now": now},
    )
    await _drop_scheduled(conn, membership_id)
    found = await get(conn, membership_id)
    assert found is not None
    return found


async def change_renewal(
    conn: AsyncConnection[Any],
    membership_id: int,
    renews_at: datetime,
    *,
    now: datetime,
    reminder_days: float,
) -> Membership:
    """Move the renewal date; the reminder moves with it."""
    await conn.execute(
        "UPDATE memberships SET renews_at = %s, version = version + 1, updated_at = %s"
        " WHERE id = %s AND status = 'active'",
        (renews_at, now, membership_id),
    )
    await _schedule(conn, membership_id, renews_at, reminder_days, now)
    found = await get(conn, membership_id)
    assert found is not None
    return found


async def _drop_scheduled(conn: AsyncConnection[Any], membership_id: int) -> None:
    await conn.execute(
        "UPDATE membership_reminders SET status = 'dropped'"
        " WHERE membership_id = %s AND status = 'scheduled'",
        (membership_id,),
    )


async def _schedule(
    conn: AsyncConnection[Any],
    membership_id: int,
    renews_at: datetime,
    reminder_days: float,
    now: datetime,
) -> None:
    """Replace the scheduled reminder by one for `renews_at`."""
    await _drop_scheduled(conn, membership_id)
    await conn.execute(
        "INSERT INTO membership_reminders (membership_id, renews_at, due_at, created_at)"
        " VALUES (%s, %s, %s, %s)",
        (membership_id, renews_at, reminder_due(renews_at, reminder_days), now),
    )


async def sweep_reminders(
    conn: AsyncConnection[Any], *, now: datetime, limit: int = 200
) -> list[float]:
    """Move due reminders into the outbox (one `membership.reminder_due` event each) and
    mark them enqueued, in this transaction; several workers may sweep at once (SKIP
    LOCKED). Returns each reminder's lateness in seconds."""
    cur = await conn.execute(
        """
        SELECT r.id, r.membership_id, r.renews_at, r.due_at, m.plan, m.price_minor,
               m.currency, m.version, m.customer_id, c.email, c.name
          FROM membership_reminders r
          JOIN memberships m ON m.id = r.membership_id
          JOIN customers c ON c.id = m.customer_id
         WHERE r.status = 'scheduled' AND r.due_at <= %(now)s AND m.status = 'active'
         ORDER BY r.due_at
         LIMIT %(limit)s
           FOR UPDATE OF r, m SKIP LOCKED
        """,
        {"now": now, "limit": limit},
    )
    rows = [_dict(cur, r) for r in await cur.fetchall()]
    for row in rows:
        plan = PLANS.get(row["plan"])
        await outbox.emit(
            conn,
            aggregate=AGGREGATE,
            aggregate_id=row["membership_id"],
            event_type=REMINDER_DUE,
            version=row["version"],
            payload={
                "reminder_id": row["id"],
                "plan": row["plan"],
                "plan_name": plan.name if plan else row["plan"],
                "price_minor": row["price_minor"],
                "currency": row["currency"].strip(),
                "renews_at": row["renews_at"].isoformat(),
                "customer": {"email": row["email"], "name": row["name"]},
            },
        )
    if rows:
        await conn.execute(
            "UPDATE membership_reminders SET status = 'enqueued', enqueued_at = %s"
            " WHERE id = ANY(%s)",
            (now, [r["id"] for r in rows]),
        )
    return [(now - r["due_at"]).total_seconds() for r in rows]


async def renew_due(
    conn: AsyncConnection[Any], *, now: datetime, reminder_days: float, limit: int = 200
) -> int:
    """Advance every active membership whose renewal date passed by whole periods (no
    payment is taken) and schedule the next reminder. Returns how many renewed."""
    cur = await conn.execute(
        """
        SELECT id, plan, renews_at FROM memberships
         WHERE status = 'active' AND renews_at <= %s
         ORDER BY renews_at LIMIT %s
           FOR UPDATE SKIP LOCKED
        """,
        (now, limit),
    )
    rows = [_dict(cur, r) for r in await cur.fetchall()]
    for row in rows:
        plan = PLANS.get(row["plan"])
        period = plan.period if plan else timedelta(days=30)
        renews = row["renews_at"]
        while renews <= now:
            renews += period
        cur = await conn.execute(
            "UPDATE memberships SET renews_at = %s, version = version + 1, updated_at = %s"
            " WHERE id = %s RETURNING version",
            (renews, now, row["id"]),
        )
        updated = await cur.fetchone()
        assert updated is not None
        await _schedule(conn, row["id"], renews, reminder_days, now)
        await outbox.emit(
            conn,
            aggregate=AGGREGATE,
            aggregate_id=row["id"],
            event_type=RENEWED,
            version=int(_dict(cur, updated)["version"]),
            payload={"plan": row["plan"], "renews_at": renews.isoformat()},
        )
    return len(rows)


async def due_reminders(conn: AsyncConnection[Any], *, now: datetime) -> tuple[int, float]:
    """(reminders due and not enqueued, seconds the oldest of them is late)."""
    cur = await conn.execute(
        """
        SELECT count(*) AS n, coalesce(extract(epoch FROM %(now)s - min(due_at)), 0) AS lag
          FROM membership_reminders WHERE status = 'scheduled' AND due_at <= %(now)s
        """,
        {"now": now},
    )
    row = _dict(cur, await cur.fetchone())
    return int(row["n"]), float(row["lag"])


def _membership(row: dict[str, Any]) -> Membership:
    return Membership(
        id=row["id"],
        customer_id=row["customer_id"],
        plan=row["plan"],
        price_minor=row["price_minor"],
        currency=row["currency"].strip(),
        status=row["status"],
        started_at=row["started_at"],
        renews_at=row["renews_at"],
        cancelled_at=row["cancelled_at"],
        version=row["version"],
        reminder_due_at=row["reminder_due_at"],
    )


def _dict(cur: Any, row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    return {col.name: value for col, value in zip(cur.description, row, strict=True)}
