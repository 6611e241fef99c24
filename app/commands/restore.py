"""`polyshop after-restore`: the id step of the restore procedure (docs/operations.md,
"Restore"): every id sequence of the schema moves past the ids of the lost future."""

from __future__ import annotations

import asyncio

import psycopg
import typer
from psycopg.rows import dict_row

from app.settings import Settings, get_settings
from storage.sequences import skip_lost_ids


async def restore_ids(settings: Settings) -> dict[str, int]:
    """Move every id sequence (orders, customers, products, API keys, outbox events, ETL
    runs, ...) past the highest id it or its table has used; the next id of each table."""
    async with await psycopg.AsyncConnection.connect(
        settings.database_url,
        autocommit=True,
        options=f"-c search_path={settings.database_schema}",
        application_name="polyshop-cli-restore",
        row_factory=dict_row,
    ) as conn:
        return await skip_lost_ids(conn)


def after_restore() -> None:
    """After a Postgres restore: new ids (orders, events, ...) start past every id used."""
    moved = asyncio.run(restore_ids(get_settings()))
    for table, next_id in moved.items():
        typer.echo(f"{table:<28} ids continue at {next_id}")
