"""POST /etl/runs (queue a run for the worker), GET /etl/runs (history and status)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from app.auth import AdminDep
from app.deps import StoresDep
from app.etl_schedule import etl_job
from app.problems import Conflict, NotFound
from app.schemas.analytics import EtlRunIn, EtlRunOut, EtlRunsOut
from app.transaction import TransactionDep
from etl import requests

router = APIRouter(prefix="/etl", tags=["etl"])


@router.post(
    "/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EtlRunOut,
    responses={409: {"description": "a run is already in progress or queued"}},
)
async def start_run(
    stores: StoresDep, tx: TransactionDep, _admin: AdminDep, body: EtlRunIn | None = None
) -> dict[str, Any]:
    """Queue an ETL run; a worker starts it within about a second. 202 with the run
    (status `queued`, then `running`: poll GET /etl/runs/{id}); 409 while one runs."""
    body = body or EtlRunIn()
    window = (body.backfill_from, body.backfill_to) if body.kind == "backfill" else None
    options = etl_job(stores.settings).run_options(window)  # type: ignore[arg-type]
    try:
        return await requests.request_run(await tx.connection(), body.kind, options)
    except requests.AlreadyRequested as exc:
        raise Conflict(str(exc), reason="etl_running") from exc


@router.get("/runs", response_model=EtlRunsOut)
async def list_runs(
    stores: StoresDep, _admin: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Newest first; `running` is true while some process holds the ETL lock."""
    async with stores.pg.connection() as conn:
        running, runs = await requests.recent_runs(conn, limit)
    return {"running": running, "runs": runs}


@router.get(
    "/runs/{run_id}", response_model=EtlRunOut, responses={404: {"description": "no such run"}}
)
async def get_run(run_id: int, stores: StoresDep, _admin: AdminDep) -> dict[str, Any]:
    async with stores.pg.connection() as conn:
        run = await requests.find_run(conn, run_id)
    if run is None:
        raise NotFound(f"no ETL run {run_id}")
    return run
