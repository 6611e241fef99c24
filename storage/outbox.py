"""The transactional outbox: write events with the change, claim and settle them per consumer.

Delivery is at-least-once: a consumer must apply events idempotently, guarded by
`OutboxEvent.version` so an old event never overwrites a newer state.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

NOTIFY_CHANNEL = "polyshop_outbox"

# The id of the request (or job) whose transaction writes events; `emit` copies it into
# each event's payload as `request_id`, so the worker can log which request caused what.
CORRELATION_ID: ContextVar[str | None] = ContextVar("polyshop_correlation_id", default=None)


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    aggregate: str
    aggregate_id: int
    event_type: str
    version: int
    payload: dict[str, Any]
    created_at: datetime
    attempts: int = 0


class Consumer(Protocol):
    """Applies a batch of events to one derived store. Raising fails the whole batch,
    which is retried with backoff; events must be applied idempotently."""

    name: str

    async def apply(self, events: Sequence[OutboxEvent]) -> None: ...


async def emit(
    conn: AsyncConnection[Any],
    *,
    aggregate: str,
    aggregate_id: int,
    event_type: str,
    version: int,
    payload: dict[str, Any] | None = None,
) -> None:
    """Record an event inside the caller's transaction (never commits)."""
    body = dict(payload or {})
    correlation_id = CORRELATION_ID.get()
    if correlation_id is not None:
        body.setdefault("request_id", correlation_id)
    await conn.execute(
        "INSERT INTO outbox (aggregate, aggregate_id, event_type, version, payload)"
        " VALUES (%s, %s, %s, %s, %s)",
        (aggregate, aggregate_id, event_type, version, Jsonb(body)),
    )


async def claim(conn: AsyncConnection[Any], consumer: str, limit: int = 200) -> list[OutboxEvent]:
    """Lock up to `limit` due events of `consumer` for this transaction. Several workers
    may claim at once: SKIP LOCKED hands each event to one of them."""
    cur = await conn.execute(
        """
        SELECT o.id, o.aggregate, o.aggregate_id, o.event_type, o.version, o.payload,
               o.created_at, p.attempts
          FROM outbox_pending p JOIN outbox o ON o.id = p.event_id
         WHERE p.consumer = %s AND p.available_at <= now()
         ORDER BY p.event_id
         LIMIT %s
           FOR UPDATE OF p SKIP LOCKED
        """,
        (consumer, limit),
    )
    rows = await cur.fetchall()
    return [_event(row) for row in rows]


async def ack(conn: AsyncConnection[Any], consumer: str, event_ids: Sequence[int]) -> None:
    await conn.execute(
        "DELETE FROM outbox_pending WHERE consumer = %s AND event_id = ANY(%s)",
        (consumer, list(event_ids)),
    )


async def fail(
    conn: AsyncConnection[Any],
    consumer: str,
    event_ids: Sequence[int],
    error: str,
    *,
    max_attempts: int,
    backoff_s: float,
    backoff_max_s: float,
) -> int:
    """Push failed events back with exponential backoff (`backoff_s` doubled per attempt,
    never more than `backoff_max_s`: once the store is back, its events are retried
    within that bound however long it was down); move those past `max_attempts` to the
    dead letters. Returns how many were dead-lettered."""
    await conn.execute(
        """
        UPDATE outbox_pending
           SET attempts = attempts + 1,
               last_error = %(error)s,
               available_at = now() + make_interval(
                   secs => least(%(cap)s, %(backoff)s * power(2, least(attempts, 60))))
         WHERE consumer = %(consumer)s AND event_id = ANY(%(ids)s)
        """,
        {
            "error": error[:2000],
            "backoff": backoff_s,
            "cap": backoff_max_s,
            "consumer": consumer,
            "ids": list(event_ids),
        },
    )
    cur = await conn.execute(
        """
        WITH dead AS (
            DELETE FROM outbox_pending
             WHERE consumer = %(consumer)s AND event_id = ANY(%(ids)s) AND attempts >= %(max)s
            RETURNING consumer, event_id, attempts, last_error
        )
        INSERT INTO outbox_dead_letters (consumer, event_id, attempts, last_error)
        SELECT consumer, event_id, attempts, last_error FROM dead
        ON CONFLICT (consumer, event_id) DO UPDATE
           SET attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, failed_at = now()
        """,
        {"consumer": consumer, "ids": list(event_ids), "max": max_attempts},
    )
    return cur.rowcount


async def _not_applied(
    conn: AsyncConnection[Any], consumer: str, aggregate: str, ids: Sequence[int] | None = None
) -> list[tuple[int, int, int]]:
    """(aggregate id, version, attempts) of the events of `aggregate` (of `ids`, if given)
    that `consumer` has not applied: waiting, being retried, or dead-lettered. Reads the
    consumer's queue and dead letters (small), never the whole outbox."""
    cur = await conn.execute(
        """
        SELECT o.aggregate_id, o.version, q.attempts
          FROM (SELECT event_id, attempts FROM outbox_pending WHERE consumer = %(consumer)s
                UNION ALL
                SELECT event_id, attempts FROM outbox_dead_letters
                 WHERE consumer = %(consumer)s) q
          JOIN outbox o ON o.id = q.event_id
         WHERE o.aggregate = %(aggregate)s
           AND (%(ids)s::bigint[] IS NULL OR o.aggregate_id = ANY(%(ids)s))
        """,
        {"consumer": consumer, "aggregate": aggregate, "ids": None if ids is None else list(ids)},
    )
    return [
        (int(r["aggregate_id"]), int(r["version"]), int(r["attempts"]))
        for r in await cur.fetchall()
    ]


async def undelivered(
    conn: AsyncConnection[Any], consumer: str, aggregate: str
) -> list[tuple[int, int]]:
    """(aggregate id, highest version) of every event of `aggregate` that `consumer` has
    not applied."""
    highest: dict[int, int] = {}
    for aggregate_id, version, _ in await _not_applied(conn, consumer, aggregate):
        highest[aggregate_id] = max(version, highest.get(aggregate_id, version))
    return list(highest.items())


Delivery = Literal["done", "failing", "pending"]


async def delivery(
    conn: AsyncConnection[Any],
    consumer: str,
    aggregate: str,
    versions: Sequence[tuple[int, int]],
) -> Delivery:
    """How far `consumer` got with the events of `aggregate` that recorded these
    (aggregate id, version) pairs: "done" once it applied them all, "failing" as soon as
    one failed an attempt (or was dead-lettered), "pending" while one waits untried."""
    wanted = set(versions)
    not_applied = await _not_applied(conn, consumer, aggregate, [i for i, _ in versions])
    attempts = [a for i, v, a in not_applied if (i, v) in wanted]
    if any(a > 0 for a in attempts):
        return "failing"
    return "pending" if attempts else "done"


async def replay_dead_letters(conn: AsyncConnection[Any], consumer: str) -> int:
    """Put every dead-lettered event of `consumer` back in its queue."""
    cur = await conn.execute(
        """
        WITH revived AS (
            DELETE FROM outbox_dead_letters WHERE consumer = %s RETURNING consumer, event_id
        )
        INSERT INTO outbox_pending (consumer, event_id)
        SELECT consumer, event_id FROM revived ON CONFLICT DO NOTHING
        """,
        (consumer,),
    )
    return cur.rowcount


async def backlog(conn: AsyncConnection[Any]) -> dict[str, tuple[int, float]]:
    """Per consumer: pending events and the age in seconds of the oldest one."""
    cur = await conn.execute(
        """
        SELECT p.consumer, count(*) AS n,
               coalesce(extract(epoch FROM now() - min(o.created_at)), 0) AS age
          FROM outbox_pending p JOIN outbox o ON o.id = p.event_id
         GROUP BY p.consumer
        """
    )
    return {r["consumer"]: (int(r["n"]), float(r["age"])) for r in await cur.fetchall()}


def _event(row: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(
        id=row["id"],
        aggregate=row["aggregate"],
        aggregate_id=row["aggregate_id"],
        event_type=row["event_type"],
        version=row["version"],
        payload=row["payload"],
        created_at=row["created_at"],
        attempts=row["attempts"],
    )
