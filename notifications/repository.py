"""The service's record of each event's e-mail (`notification_emails`, keyed by event id).

Written after the SMTP server answered and before the broker ack: a redelivered message
whose row exists is acknowledged without a second e-mail.
"""

from __future__ import annotations

from typing import Any, Literal

from psycopg import AsyncConnection

Status = Literal["sent", "failed"]


async def status(conn: AsyncConnection[Any], event_id: int) -> Status | None:
    cur = await conn.execute(
        "SELECT status FROM notification_emails WHERE event_id = %s", (event_id,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    value = row["status"] if isinstance(row, dict) else row[0]
    return "sent" if value == "sent" else "failed"


async def record(
    conn: AsyncConnection[Any],
    *,
    event_id: int,
    event_type: str,
    recipient: str,
    message_id: str,
    status: Status,
    error: str | None = None,
) -> bool:
    """Record the outcome (a failed one may be overwritten: a replayed dead letter is
    tried again); False if the event was recorded as sent already (another replica
    raced us: the e-mail went out twice, and the caller counts it)."""
    cur = await conn.execute(
        """
        INSERT INTO notification_emails (event_id, event_type, recipient, message_id, status, error)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (event_id) DO UPDATE
           SET recipient = EXCLUDED.recipient, status = EXCLUDED.status,
               error = EXCLUDED.error, recorded_at = now()
         WHERE notification_emails.status = 'failed'
        """,
        (event_id, event_type, recipient, message_id, status, error),
    )
    return cur.rowcount == 1


async def counts(conn: AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute("SELECT status, count(*) AS n FROM notification_emails GROUP BY 1")
    rows = await cur.fetchall()
    return {
        (r["status"] if isinstance(r, dict) else r[0]): int(r["n"] if isinstance(r, dict) else r[1])
        for r in rows
    }
