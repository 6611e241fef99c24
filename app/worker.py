"""The worker process: outbox relay and timed jobs, in one asyncio loop.

What it runs is built by one function, `app.worker_wiring.build_worker`, from the
process's stores; `run_worker` opens the stores, asks that function for the plan and
supervises each task. Each task gets an event that is set on shutdown; it must return
promptly once the event is set, leaving nothing half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import structlog

from app.settings import Settings
from app.stores import Stores, open_stores
from app.worker_wiring import Task, WorkerPlan, build_worker

log = structlog.get_logger()

PlanBuilder = Callable[[Stores], WorkerPlan]


async def run_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    build: PlanBuilder = build_worker,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_stores(settings, application_name="polyshop-worker") as stores:
        plan = build(stores)
        log.info(
            "worker.started",
            tasks=sorted(plan.tasks),
            consumers=[c.name for c in plan.consumers],
        )
        async with asyncio.TaskGroup() as group:
            for name, task in plan.tasks.items():
                group.create_task(_supervised(name, task, stop))
        log.info("worker.stopped")


async def _supervised(name: str, task: Task, stop: asyncio.Event) -> None:
    """Run a task until shutdown; a crash is logged and the task restarted after a pause."""
    while not stop.is_set():
        try:
            await task(stop)
        except Exception:
            log.exception("worker.task_crashed", task=name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
        else:
            return
