"""POST /etl/runs (start a run now), GET /etl/runs (history and status)."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from app.auth import AdminDep
from app.deps import StoresDep
from app.etl_schedule import etl_job, record_metrics, watch_data_age
from app.problems import Conflict, NotFound
from app.schemas.analytics import EtlRunIn, EtlRunOut, EtlRunsOut
from etl.runner import AlreadyRunning, EtlJob, RunHandle
from etl.tracking import RUN_COLUMNS, RUNNING_SQL

router = APIRouter(prefix="/etl", tags=["etl"])


def _run_in_background(request: Request, job: EtlJob, handle: RunHandle) -> None:
    """The run goes on in a thread of this process, holding the advisory lock; a
    non-daemon thread, so a graceful shutdown lets it finish (a kill is recovered)."""

    def work() -> None:
        record_metrics(job.execute(handle))

    thread = threading.Thread(target=work, name=f"etl-run-{handle.run_id}")
    threads: set[threading.Thread] = getattr(request.app.state, "etl_threads", set())
    request.app.state.etl_threads = {t for t in threads if t.is_alive()} | {thread}
    thread.start()


@router.post(
    "/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EtlRunOut,
    responses={409: {"description": "a run is already in progress"}},
)
async def start_run(
    request: Request, stores: StoresDep, _admin: AdminDep, body: EtlRunIn | None = None
) -> dict[str, Any]:
    """Start an ETL run now; 202 with the run (poll GET /etl/runs/{id}), 409 while one runs."""
    body = body or EtlRunIn()
    watch_data_age(stores.analytics)
    job = etl_job(stores.settings)
    window = (body.backfill_from, body.backfill_to) if body.kind == "backfill" else None
    try:
        handle = await asyncio.to_thread(job.begin, body.kind, window)  # type: ignore[arg-type]
    except AlreadyRunning as exc:
        raise Conflict(str(exc), reason="etl_running") from exc
    _run_in_background(request, job, handle)
    run = await _get_run(stores, handle.run_id)
    assert run is not None
    return run


async def _get_run(stores: StoresDep, run_id: int) -> dict[str, Any] | None:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {RUN_COLUMNS} FROM etl_runs WHERE id = %s", (run_id,))
        return await cur.fetchone()


@router.get("/runs", response_model=EtlRunsOut)
async def list_runs(
    stores: StoresDep, _admin: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Newest first; `running` is true while some process holds the ETL lock."""
    watch_data_age(stores.analytics)
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            f"SELECT {RUN_COLUMNS} FROM etl_runs ORDER BY started_at DESC, id DESC LIMIT %s",
            (limit,),
        )
        runs = await cur.fetchall()
        cur = await conn.execute(RUNNING_SQL)
        row = await cur.fetchone()
    return {"running": bool(row and row["running"]), "runs": runs}


@router.get(
    "/runs/{run_id}", response_model=EtlRunOut, responses={404: {"description": "no such run"}}
)
async def get_run(run_id: int, stores: StoresDep, _admin: AdminDep) -> dict[str, Any]:
    run = await _get_run(stores, run_id)
    if run is None:
        raise NotFound(f"no ETL run {run_id}")
    return run
