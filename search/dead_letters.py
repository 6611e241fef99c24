"""Dead-lettered events of the "search" consumer: list them, put them back in the queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from search.consumer import CONSUMER_NAME
from storage import outbox


@dataclass(frozen=True)
class DeadLetter:
    event_id: int
    aggregate: str
    aggregate_id: int
    event_type: str
    version: int
    attempts: int
    last_error: str | None
    failed_at: datetime


async def list_dead_letters(
    conn: AsyncConnection[dict[str, Any]], *, consumer: str = CONSUMER_NAME, limit: int = 100
) -> list[DeadLetter]:
    cur = conn.cursor(row_factory=class_row(DeadLetter))
    await cur.execute(
        """
        SELECT d.event_id, o.aggregate, o.aggregate_id, o.event_type, o.version,
               d.attempts, d.last_error, d.failed_at
          FROM outbox_dead_letters d JOIN outbox o ON o.id = d.event_id
         WHERE d.consumer = %s
         ORDER BY d.event_id
         LIMIT %s
        """,
        (consumer, limit),
    )
    return await cur.fetchall()


async def replay(conn: AsyncConnection[dict[str, Any]], *, consumer: str = CONSUMER_NAME) -> int:
    """Queue every dead letter of `consumer` again; returns how many."""
    return await outbox.replay_dead_letters(conn, consumer)
