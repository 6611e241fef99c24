"""Id sequences after a restore: every id the lost future used stays unused.

A restore (a dump, a point-in-time recovery, a failover to a replica that was behind)
sets each sequence back to where it was in the backup. The ids handed out after that
are still known outside Postgres: orders and their lines in the analytical copy (an
incremental run then mixes a lost order's lines into a new order of the same id), order
confirmation e-mails already sent, messages still queued in RabbitMQ, event ids in
notification records and Message-IDs, ETL run ids in snapshot file names and lake commit
messages, customer and API key ids in web sessions in Redis. `skip_lost_ids` moves every
identity (or serial) sequence of the schema `gap` past the highest id it or its table has
used, so no new row reuses an id of the lost future (unless that future used more than
`gap` ids). Safe to repeat and while the app runs: it only moves sequences forward.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

# 10^9 ids: more than any lost future uses; a bigint has room for 9 * 10^9 such restores.
LOST_FUTURE_GAP = 1_000_000_000

_SEQUENCES = """
SELECT c.relname AS tbl, a.attname AS col, s.seq::text AS seq
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 CROSS JOIN LATERAL (
       SELECT pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)
              ::regclass AS seq
         FROM pg_namespace n WHERE n.oid = c.relnamespace) s
 WHERE c.relnamespace = current_schema()::regnamespace
   AND c.relkind IN ('r', 'p')
   AND (a.attidentity <> '' OR a.atthasdef)
   AND s.seq IS NOT NULL
 ORDER BY c.relname, a.attname
"""


async def skip_lost_ids(conn: AsyncConnection[Any], gap: int = LOST_FUTURE_GAP) -> dict[str, int]:
    """Move each id sequence of the current schema `gap` past the highest id it or its
    table has used. The next id of each, by table (`table.column` if a table has two)."""
    cur = await conn.execute(_SEQUENCES)
    columns = [(str(r["tbl"]), str(r["col"]), str(r["seq"])) for r in await cur.fetchall()]
    per_table: dict[str, int] = {}
    for table, _, _ in columns:
        per_table[table] = per_table.get(table, 0) + 1
    moved: dict[str, int] = {}
    for table, column, seq in columns:
        query = sql.SQL(
            "SELECT setval({seq}::regclass,"
            " greatest(coalesce(pg_sequence_last_value({seq}::regclass), 0),"
            " (SELECT coalesce(max({col}), 0) FROM {tbl})) + {gap}) + 1 AS next"
        ).format(
            seq=sql.Literal(seq),
            col=sql.Identifier(column),
            tbl=sql.Identifier(table),
            gap=sql.Literal(gap),
        )
        row = await (await conn.execute(query)).fetchone()
        assert row is not None
        moved[table if per_table[table] == 1 else f"{table}.{column}"] = int(row["next"])
    return moved
