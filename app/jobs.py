"""Wiring of the jobs: the broker publisher (an outbox consumer), the membership
sweeps (a worker task) and the notifications service (its own process), each built
from settings here; the domain code lives in jobs/, notifications/, memberships/."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool

from app.settings import Settings
from app.stores import Stores
from jobs import admin, metrics
from jobs.publisher import CONSUMER_NAME, BrokerPublisher
from jobs.topology import Topology
from memberships import repository as membership_store
from memberships.clock import Clock, system_clock
from memberships.tasks import SweepResult, run_sweeps
from notifications.sender import SmtpConfig, SmtpSender
from notifications.service import NotificationService
from notifications.templates import Renderer
from storage import outbox
from storage.postgres import Pool, create_pool

log = structlog.get_logger()


def topology(settings: Settings) -> Topology:
    return Topology(prefix=settings.broker_prefix, delivery_limit=settings.broker_delivery_limit)


def jobs_consumer(stores: Stores) -> BrokerPublisher:
    """Outbox consumer "jobs" (in the worker plan: app/worker_wiring.py)."""
    s = stores.settings
    return BrokerPublisher(
        stores.pg,
        url=s.broker_url.get_secret_value(),
        topology=topology(s),
        namespace=s.database_schema,
        confirms=s.broker_confirms,
        timeout_s=s.broker_timeout_s,
    )


def _record_sweep(result: SweepResult) -> None:
    metrics.REMINDER_LAG.set(result.max_lag_s)


async def run_membership_sweeps(
    stores: Stores, stop: asyncio.Event, *, clock: Clock = system_clock
) -> None:
    """Worker task "memberships": due reminders into the outbox, renewals."""
    s = stores.settings
    await run_sweeps(
        stores.pg,
        stop,
        interval_s=s.membership_sweep_s,
        reminder_days=s.membership_reminder_days,
        clock=clock,
        on_result=_record_sweep,
    )


def build_notification_service(
    settings: Settings, pool: AsyncConnectionPool[Any]
) -> NotificationService:
    s = settings
    sender = SmtpSender(
        SmtpConfig(
            host=s.smtp_host,
            port=s.smtp_port,
            security=s.smtp_security,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value(),
            timeout_s=s.smtp_timeout_s,
        ),
        connections=s.smtp_connections,
    )
    return NotificationService(
        pool,
        url=s.broker_url.get_secret_value(),
        topology=topology(s),
        sender=sender,
        renderer=Renderer(sender=s.mail_from, domain=s.mail_domain),
        prefetch=s.broker_prefetch,
        timeout_s=s.broker_timeout_s,
    )


@contextlib.asynccontextmanager
async def open_pool(settings: Settings, application_name: str) -> AsyncIterator[Pool]:
    pool = await create_pool(
        settings.database_url,
        schema=settings.database_schema,
        application_name=application_name,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        statement_timeout_ms=settings.database_statement_timeout_ms,
        timeout_s=settings.database_pool_timeout_s,
        fail_fast_s=settings.database_fail_fast_s,
    )
    try:
        yield pool
    finally:
        await pool.close()


async def run_notifications(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """`polyshop notifications`: until SIGTERM/SIGINT, then finish what is in flight."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_pool(settings, "polyshop-notifications") as pool:
        service = build_notification_service(settings, pool)
        log.info("notifications.started", queue=service.topology.notifications_queue)
        await service.run(stop)


def serve_metrics(port: int) -> None:
    if port == 0:
        return
    try:
        start_http_server(port, addr="127.0.0.1")
    except OSError as exc:  # a second replica on this host: works on, unscraped
        log.warning("notifications.metrics_not_served", port=port, error=str(exc))


@dataclass(frozen=True)
class JobsStatus:
    queues: list[admin.QueueStats]
    due_reminders: int
    reminder_lag_s: float
    outbox_pending: int
    outbox_dead_letters: int
    emails: dict[str, int]


async def jobs_status(settings: Settings, *, clock: Clock = system_clock) -> JobsStatus:
    from notifications import repository as emails

    topo = topology(settings)
    queues = await admin.queue_stats(settings.broker_url.get_secret_value(), topo)
    async with open_pool(settings, "polyshop-cli") as pool, pool.connection() as conn:
        due, lag = await membership_store.due_reminders(conn, now=clock())
        backlog = await outbox.backlog(conn)
        cur = await conn.execute(
            "SELECT count(*) AS n FROM outbox_dead_letters WHERE consumer = %s", (CONSUMER_NAME,)
        )
        row: Any = await cur.fetchone()
        counts = await emails.counts(conn)
    for q in queues:
        metrics.QUEUE_DEPTH.labels(q.name).set(q.ready)
    metrics.DUE_REMINDERS.set(due)
    return JobsStatus(
        queues=queues,
        due_reminders=due,
        reminder_lag_s=lag,
        outbox_pending=backlog.get(CONSUMER_NAME, (0, 0.0))[0],
        outbox_dead_letters=int(row["n"]),
        emails=counts,
    )
