"""POST /analytics/query (the SQL sandbox), GET /analytics/reports/{name}."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from analytics import formats
from analytics.duck import NoSnapshot, StoreUnavailable
from analytics.reports import REPORTS
from analytics.sandbox import QueryResult, SandboxError, run_query
from app.auth import AdminDep
from app.deps import StoresDep
from app.problems import NotFound, Problem, ServiceUnavailable
from app.schemas.analytics import AnalyticsQuery, QueryResultJson, ReportOut
from app.stores import Stores

router = APIRouter(prefix="/analytics", tags=["analytics"])

_FORMATS_DOC = {
    "content": {
        formats.JSON: {},
        formats.CSV: {},
        formats.PARQUET: {},
        formats.ARROW: {},
    },
    "description": "JSON by default; CSV, Parquet or Arrow IPC stream by `Accept`. "
    "Headers `X-Truncated` and `X-Row-Count` describe the result.",
}


async def _run(stores: Stores, sql: str, params: list[Any], max_rows: int) -> QueryResult:
    store = stores.analytics
    try:
        return await asyncio.to_thread(
            run_query,
            store,
            sql,
            params,
            timeout_s=stores.settings.analytics_query_timeout_s,
            max_rows=max_rows,
        )
    except NoSnapshot as exc:
        raise ServiceUnavailable(str(exc), headers={"Retry-After": "30"}) from exc
    except StoreUnavailable as exc:
        raise ServiceUnavailable(str(exc), headers={"Retry-After": "5"}) from exc
    except SandboxError as exc:
        raise Problem(
            exc.message, status=exc.status, title="Query refused", reason=exc.reason
        ) from exc


@router.post(
    "/query",
    response_model=QueryResultJson,
    responses={200: _FORMATS_DOC, 400: {}, 403: {}, 406: {}, 422: {}, 503: {}},
)
async def query(
    body: AnalyticsQuery,
    stores: StoresDep,
    _admin: AdminDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Run one read-only SELECT against the last complete refresh of the analytical copy."""
    media_type = formats.negotiate(accept)
    if media_type is None:
        raise Problem(
            "supported: application/json, text/csv, application/vnd.apache.parquet, "
            "application/vnd.apache.arrow.stream",
            status=406,
            title="Not Acceptable",
            reason="unsupported_format",
        )
    cap = stores.settings.analytics_max_rows
    max_rows = min(body.max_rows or cap, cap)
    result = await _run(stores, body.sql, list(body.params), max_rows)
    headers = {
        "X-Truncated": "true" if result.truncated else "false",
        "X-Row-Count": str(result.table.num_rows),
    }
    if media_type == formats.PARQUET:
        headers["Content-Disposition"] = 'attachment; filename="result.parquet"'
    body_iter = iterate_in_threadpool(formats.chunks(result.table, media_type, result.truncated))
    return StreamingResponse(body_iter, media_type=media_type, headers=headers)


@router.get("/reports", response_model=dict[str, str])
async def list_reports(_admin: AdminDep) -> dict[str, str]:
    """Names and titles of the built-in reports."""
    return {name: r.title for name, r in REPORTS.items()}


@router.get("/reports/{name}", response_model=ReportOut, responses={404: {}, 503: {}})
async def report(name: str, stores: StoresDep, _admin: AdminDep) -> Response:
    """A built-in report: its rows and a Vega-Lite chart spec (data named `rows`)."""
    spec = REPORTS.get(name)
    if spec is None:
        raise NotFound(f"no report named {name!r}; known: {', '.join(sorted(REPORTS))}")
    result = await _run(stores, spec.sql, [], stores.settings.analytics_max_rows)
    payload = {
        "name": spec.name,
        "title": spec.title,
        "columns": result.table.column_names,
        "rows": formats.table_rows(result.table),
        "truncated": result.truncated,
        "chart": {**spec.chart, "title": spec.title, "data": {"name": "rows"}},
    }
    return Response(json.dumps(payload, default=formats.json_value), media_type="application/json")
