"""`polyshop search reindex|reconcile|dead-letters list|dead-letters replay`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app.settings import Settings, get_settings
from search.dead_letters import list_dead_letters, replay
from search.engine import SearchEngine, create_search_engine
from search.reconcile import reconcile
from search.reindex import ReindexInProgress, reindex
from storage.postgres import create_pool

search_cli = typer.Typer(help="The product search index.", no_args_is_help=True)
dead_letters_cli = typer.Typer(
    help="Outbox events the search consumer gave up on.", no_args_is_help=True
)
search_cli.add_typer(dead_letters_cli, name="dead-letters")

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]


@contextlib.asynccontextmanager
async def _open(settings: Settings) -> AsyncIterator[tuple[PgPool, SearchEngine]]:
    pg = await create_pool(
        settings.database_url,
        schema=settings.database_schema,
        application_name="polyshop-cli-search",
        min_size=1,
        max_size=3,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )
    engine = create_search_engine(
        settings.search_engine, settings.search_url, timeout_s=max(settings.search_timeout_s, 30)
    )
    try:
        yield pg, engine
    finally:
        await engine.close()
        await pg.close()


async def _reindex(settings: Settings, batch_size: int, replicas: int) -> None:
    async with _open(settings) as (pg, engine):
        try:
            report = await reindex(
                pg, engine, settings.search_index_prefix, batch_size=batch_size, replicas=replicas
            )
        except ReindexInProgress as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
    typer.echo(
        f"reindexed into {report.index}: {report.loaded} loaded, {report.caught_up} caught up, "
        f"{report.seconds:.1f} s; removed {', '.join(report.previous) or 'nothing'}"
    )


@search_cli.command("reindex")
def reindex_command(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    replicas: Annotated[int, typer.Option(min=0, help="replicas of the new index")] = 0,
) -> None:
    """Rebuild the index from Postgres, then swap the alias (no downtime, no lost write)."""
    asyncio.run(_reindex(get_settings(), batch_size, replicas))


async def _reconcile(settings: Settings) -> None:
    async with _open(settings) as (pg, engine):
        report = await reconcile(pg, engine, settings.search_index_prefix)
    typer.echo(
        f"checked {report.checked}: {report.missing} missing, {report.stale} stale, "
        f"{report.extra} extra; repaired {len(report.repaired_ids)}"
    )


@search_cli.command("reconcile")
def reconcile_command() -> None:
    """Compare Postgres with the index now and repair every difference."""
    asyncio.run(_reconcile(get_settings()))


async def _list(settings: Settings, limit: int) -> None:
    async with _open(settings) as (pg, _engine), pg.connection() as conn:
        letters = await list_dead_letters(conn, limit=limit)
    if not letters:
        typer.echo("no dead letters")
    for d in letters:
        typer.echo(
            f"{d.event_id}\t{d.event_type}\t{d.aggregate}:{d.aggregate_id}\tv{d.version}\t"
            f"attempts={d.attempts}\t{d.failed_at.isoformat()}\t{(d.last_error or '')[:120]}"
        )


@dead_letters_cli.command("list")
def list_command(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100) -> None:
    """List dead-lettered events of the search consumer."""
    asyncio.run(_list(get_settings(), limit))


async def _replay(settings: Settings) -> None:
    async with _open(settings) as (pg, _engine), pg.connection() as conn:
        count = await replay(conn)
    typer.echo(f"queued {count} event(s) again")


@dead_letters_cli.command("replay")
def replay_command() -> None:
    """Put every dead-lettered event of the search consumer back in its queue."""
    asyncio.run(_replay(get_settings()))
