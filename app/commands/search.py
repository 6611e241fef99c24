"""`polyshop search reindex|reconcile|evaluate|dead-letters list|dead-letters replay`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from app.settings import Settings, get_settings
from app.stores import create_search_cache
from search.dead_letters import list_dead_letters, replay
from search.engine import SearchEngine, SearchRequestError, create_search_engine
from search.evaluate import (
    DEFAULT_RELEVANT_GRADE,
    MAX_GRADE,
    Evaluation,
    JudgmentFileError,
    Judgments,
    evaluate,
    load_judgments,
)
from search.index_admin import alias_name
from search.reconcile import reconcile
from search.reindex import ReindexInProgress, reindex
from storage.cache import create_redis
from storage.errors import StoreUnavailable
from storage.postgres import create_pool

search_cli = typer.Typer(help="The product search index.", no_args_is_help=True)
dead_letters_cli = typer.Typer(
    help="Outbox events the search consumer gave up on.", no_args_is_help=True
)
search_cli.add_typer(dead_letters_cli, name="dead-letters")

PgPool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]


@contextlib.asynccontextmanager
async def _search_generation(settings: Settings) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """The bump of the search cache's generation (after a reindex or a repair), counted
    nowhere (a CLI process has no /metrics). A Redis failure is reported, not raised: the
    index work is done, and the cached answers expire within their TTL."""
    redis = create_redis(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 5.0))
    cache = create_search_cache(settings, redis)

    async def bump() -> None:
        try:
            await cache.bump()
        except (RedisError, OSError) as exc:
            typer.echo(
                f"the search cache was not invalidated ({type(exc).__name__}: {exc}); its"
                f" answers expire within {settings.search_cache_ttl_s:g} s, or run"
                " `polyshop cache flush`",
                err=True,
            )

    try:
        yield bump
    finally:
        await redis.aclose()


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
    async with _open(settings) as (pg, engine), _search_generation(settings) as bump:
        try:
            report = await reindex(
                pg,
                engine,
                settings.search_index_prefix,
                batch_size=batch_size,
                replicas=replicas,
                on_visible=bump,
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
    async with _open(settings) as (pg, engine), _search_generation(settings) as bump:
        report = await reconcile(pg, engine, settings.search_index_prefix, on_visible=bump)
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


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def _print_evaluation(result: Evaluation, relevant: int) -> None:
    width = max([len(q.query) for q in result.queries] + [5])
    typer.echo(
        f"{'query':<{width}}  nDCG@10 polyshop baseline   delta   MRR polyshop baseline"
        "   recall@100 polyshop baseline"
    )
    for q in result.queries:
        p, b = q.polyshop, q.baseline
        typer.echo(
            f"{q.query:<{width}}  {'':8}{p.ndcg:6.3f} {b.ndcg:8.3f} {q.delta:+7.3f}"
            f"  {'':4}{p.mrr:6.3f} {b.mrr:8.3f}  {'':11}{_pct(p.recall)} {_pct(b.recall):>8}"
        )
    p, b = result.polyshop, result.baseline
    typer.echo(
        f"{'MEAN':<{width}}  {'':8}{p.ndcg:6.3f} {b.ndcg:8.3f} {p.ndcg - b.ndcg:+7.3f}"
        f"  {'':4}{p.mrr:6.3f} {b.mrr:8.3f}  {'':11}{_pct(p.recall)} {_pct(b.recall):>8}"
    )
    typer.echo(
        f"\n{len(result.queries)} queries (relevant: grade >= {relevant}); "
        f"nDCG@10 polyshop {p.ndcg:.4f} vs baseline {b.ndcg:.4f}"
        + (f" ({result.gain:+.1%})" if result.gain is not None else "")
    )
    if result.missing_skus:
        typer.echo(f"warning: {result.missing_skus} judged SKU(s) are not in the index")
    worse = result.worse
    typer.echo(f"{len(worse)} quer{'y' if len(worse) == 1 else 'ies'} worse than the baseline")
    for q in worse:
        typer.echo(f"  {q.query}: {q.polyshop.ndcg:.3f} < {q.baseline.ndcg:.3f} ({q.delta:+.3f})")


async def _evaluate(settings: Settings, judgments: Judgments, relevant: int) -> Evaluation:
    engine = create_search_engine(
        settings.search_engine, settings.search_url, timeout_s=max(settings.search_timeout_s, 30)
    )
    try:
        return await evaluate(
            engine, alias_name(settings.search_index_prefix), judgments, relevant=relevant
        )
    finally:
        await engine.close()


@search_cli.command("evaluate")
def evaluate_command(
    judgments: Annotated[Path, typer.Argument(help="CSV: query,sku,grade (see docs/search.md)")],
    relevant_grade: Annotated[
        int, typer.Option(min=1, max=MAX_GRADE, help="lowest grade MRR and recall count")
    ] = DEFAULT_RELEVANT_GRADE,
) -> None:
    """Score the live index on a judgment list (nDCG@10, MRR, recall@100) beside the
    engine's stock `english` analyzer over the same documents, and list what got worse."""
    settings = get_settings()
    try:
        judged = load_judgments(judgments)
    except OSError as exc:
        typer.echo(f"{judgments}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except JudgmentFileError as exc:
        typer.echo(f"{judgments}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        result = asyncio.run(_evaluate(settings, judged, relevant_grade))
    except StoreUnavailable as exc:
        typer.echo(
            f"search engine ({settings.search_engine} at {settings.search_url}) is unavailable:"
            f" {exc.reason or exc}",
            err=True,
        )
        raise typer.Exit(3) from None
    except SearchRequestError as exc:
        if exc.status == 404:
            typer.echo(
                f"no index behind {alias_name(settings.search_index_prefix)}:"
                " run `polyshop search reindex` first",
                err=True,
            )
        else:
            typer.echo(f"search engine refused the evaluation: {exc}", err=True)
        raise typer.Exit(1) from None
    _print_evaluation(result, relevant_grade)
