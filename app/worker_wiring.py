"""What the worker runs, built in one place: the outbox consumers the relay delivers to,
and the timed tasks. Nothing registers itself; add a consumer or a task here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from app import etl_schedule, idempotency_purge, jobs, search_worker
from app.cache_consumer import CacheInvalidator
from app.relay import Relay
from app.stores import Stores
from images import gc as image_gc
from images import renditions as image_renditions
from storage.outbox import Consumer

# A long-running coroutine of the worker; it returns once the event is set.
Task = Callable[[asyncio.Event], Awaitable[None]]


@dataclass(frozen=True)
class WorkerPlan:
    consumers: Sequence[Consumer]
    tasks: Mapping[str, Task]


def build_consumers(stores: Stores) -> list[Consumer]:
    """Every outbox consumer, in delivery order."""
    return [
        CacheInvalidator(stores.product_cache, stores.order_cache),
        search_worker.search_consumer(stores),
        jobs.jobs_consumer(stores),  # publishes order events and reminders to RabbitMQ
    ]


def build_worker(stores: Stores) -> WorkerPlan:
    consumers = build_consumers(stores)
    relay = Relay(stores, consumers)
    tasks: dict[str, Task] = {
        "outbox-relay": relay.run,
        "search-reconcile": partial(search_worker.reconcile_task, stores),
        "image-gc": partial(image_gc.run_image_gc, stores),
        "image-renditions": partial(image_renditions.run_renditions, stores),
        "idempotency-purge": partial(idempotency_purge.run_idempotency_purge, stores),
        "etl-schedule": partial(etl_schedule.etl_schedule_task, stores),
        "etl-requests": partial(etl_schedule.etl_requests_task, stores),
        "lake-maintenance": partial(etl_schedule.lake_maintenance_task, stores),
        "memberships": partial(jobs.run_membership_sweeps, stores),
    }
    return WorkerPlan(consumers, tasks)
