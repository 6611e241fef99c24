"""The worker process: outbox relay and timed jobs, in one asyncio loop.

Feature areas plug in through two registries:
- `CONSUMERS`: factories of outbox consumers (cache invalidation, search index, ...);
- `TASKS`: long-running coroutines (the relay itself, the ETL schedule, blob GC, ...).
Each task gets the process's stores and an event that is set on shutdown; it must
return promptly once the event is set, leaving nothing half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import structlog

from app.settings import Settings
from app.stores import Stores, open_stores
from storage.outbox import Consumer

log = structlog.get_logger()

ConsumerFactory = Callable[[Stores], Consumer]
Task = Callable[[Stores, asyncio.Event], Awaitable[None]]

CONSUMERS: list[ConsumerFactory] = []
TASKS: dict[str, Task] = {}


def _load_plugins() -> None:
    """Import the modules that register consumers and tasks."""
    from app import worker_plugins  # noqa: F401


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    _load_plugins()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_stores(settings, application_name="polyshop-worker") as stores:
        log.info("worker.started", tasks=sorted(TASKS), consumers=len(CONSUMERS))
        async with asyncio.TaskGroup() as group:
            for name, task in TASKS.items():
                group.create_task(_supervised(name, task, stores, stop))
        log.info("worker.stopped")


async def _supervised(name: str, task: Task, stores: Stores, stop: asyncio.Event) -> None:
    """Run a task until shutdown; a crash is logged and the task restarted after a pause."""
    while not stop.is_set():
        try:
            await task(stores, stop)
        except Exception:
            log.exception("worker.task_crashed", task=name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
        else:
            return
