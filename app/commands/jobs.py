"""`polyshop notifications` (the e-mail service) and
`polyshop jobs status|replay-dead-letters|after-restore`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import psycopg
import typer
from psycopg.rows import dict_row

from app.settings import Settings, get_settings
from storage import outbox

jobs_cli = typer.Typer(
    help="Jobs on RabbitMQ: queues, dead letters, reminders.", no_args_is_help=True
)


def notifications() -> None:
    """Run the notifications service: RabbitMQ -> e-mail (SMTP). Replicas are safe."""
    from app.jobs import run_notifications, serve_metrics
    from app.logging import configure_logging

    settings = get_settings().model_copy(update={"service_name": "polyshop-notifications"})
    configure_logging(settings)
    serve_metrics(settings.notifications_metrics_port)
    asyncio.run(run_notifications(settings))


@jobs_cli.command("status")
def status() -> None:
    """Queues (ready messages, consumers), dead letters, due reminders, outbox backlog."""
    from app.jobs import jobs_status

    s = asyncio.run(jobs_status(get_settings()))
    for q in s.queues:
        typer.echo(f"queue {q.name:<40} ready={q.ready:<8} consumers={q.consumers}")
    typer.echo(f"due reminders   {s.due_reminders} (oldest {s.reminder_lag_s:.0f}s late)")
    typer.echo(f"outbox (jobs)   pending={s.outbox_pending} dead-lettered={s.outbox_dead_letters}")
    typer.echo("e-mails         " + " ".join(f"{k}={v}" for k, v in sorted(s.emails.items())))


@jobs_cli.command("replay-dead-letters")
def replay(
    limit: Annotated[int | None, typer.Option(help="at most this many")] = None,
) -> None:
    """Put the notifications queue's dead letters back into it."""
    from app.jobs import topology
    from jobs.admin import replay_dead_letters

    settings = get_settings()
    moved = asyncio.run(
        replay_dead_letters(settings.broker_url.get_secret_value(), topology(settings), limit=limit)
    )
    typer.echo(f"replayed {moved} dead letters")


async def after_restore(settings: Settings) -> int:
    """The jobs step of the restore procedure (docs/operations.md): event ids move past
    the lost future's, so no new event reuses an id that a message, a notification
    record or an e-mail's Message-ID already carries. The next event id."""
    async with await psycopg.AsyncConnection.connect(
        settings.database_url,
        autocommit=True,
        options=f"-c search_path={settings.database_schema}",
        application_name="polyshop-cli-jobs",
        row_factory=dict_row,
    ) as conn:
        return await outbox.skip_lost_ids(conn)


@jobs_cli.command("after-restore")
def after_restore_command() -> None:
    """After a Postgres restore: new event ids start past every id used before."""
    typer.echo(f"outbox event ids continue at {asyncio.run(after_restore(get_settings()))}")
