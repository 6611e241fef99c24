"""`polyshop notifications` (the e-mail service) and
`polyshop jobs status|replay-dead-letters` (ids after a restore: app/commands/restore.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from app.settings import get_settings

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
