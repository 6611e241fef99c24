"""The analytics console: SQL editor (CodeMirror island), results, chart, downloads, and
the built-in reports as charts. The same sandbox as `POST /analytics/query`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from analytics import formats
from analytics.duck import NoSnapshot
from analytics.reports import REPORTS
from analytics.sandbox import QueryResult, SandboxError, run_query
from web import charts
from web.backend import WebStores
from web.context import PageDep
from web.errors import PageRoute

router = APIRouter(route_class=PageRoute)

SHOWN_ROWS = 200
MAX_SQL = 20_000
EXAMPLE = (
    "SELECT date_key, sum(revenue) AS revenue\nFROM fact_order_lines\n"
    "WHERE order_status <> 'cancelled'\nGROUP BY date_key\nORDER BY date_key"
)
SCHEMA_SQL = (
    "SELECT table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
)
DOWNLOADS = {"csv": (formats.CSV, "result.csv"), "parquet": (formats.PARQUET, "result.parquet")}


async def _run(stores: WebStores, sql: str) -> QueryResult:
    s = stores.settings
    return await asyncio.to_thread(
        run_query,
        stores.analytics,
        sql,
        [],
        timeout_s=s.analytics_query_timeout_s,
        max_rows=s.analytics_max_rows,
    )


async def _schema(stores: WebStores) -> dict[str, list[str]]:
    """Tables and their columns, for the editor's completion."""
    try:
        result = await _run(stores, SCHEMA_SQL)
    except (SandboxError, NoSnapshot):
        return {}
    schema: dict[str, list[str]] = {}
    for table, column in formats.table_rows(result.table):
        schema.setdefault(str(table), []).append(str(column))
    return schema


def _result_context(result: QueryResult, title: str) -> dict[str, Any]:
    table = result.table
    return {
        "columns": table.column_names,
        "rows": formats.table_rows(table.slice(0, SHOWN_ROWS)),
        "row_count": table.num_rows,
        "truncated": result.truncated,
        "chart": charts.render(table, title),
    }


async def _console(page: PageDep, sql: str, **extra: Any) -> dict[str, Any]:
    return {
        "sql": sql,
        "schema": await _schema(page.stores),
        "reports": {name: r.title for name, r in REPORTS.items()},
        "errors": {},
        **extra,
    }


@router.get("/staff/console")
async def console(page: PageDep) -> Response:
    page.require("admin")
    return page.render("staff/console.html", await _console(page, EXAMPLE))


def _sql(raw: object) -> tuple[str, str | None]:
    sql = str(raw or "").strip()
    if not sql:
        return sql, "Write a SELECT."
    if len(sql) > MAX_SQL:
        return sql, f"At most {MAX_SQL} characters."
    return sql, None


@router.post("/staff/console")
async def run(page: PageDep) -> Response:
    form = await page.form()
    page.require("admin")
    sql, error = _sql(form.get("sql"))
    if error is None:
        try:
            result = await _run(page.stores, sql)
        except NoSnapshot:
            error = "No analytical copy yet: run the ETL first (ETL page)."
        except SandboxError as exc:
            error = exc.message
    if error is not None:
        ctx = await _console(page, sql, errors={"sql": error})
        return page.render("staff/console.html", ctx, status=422)
    ctx = await _console(page, sql, result=_result_context(result, "Query result"))
    return page.render("staff/console.html", ctx)


@router.post("/staff/console/download")
async def download(page: PageDep) -> Response:
    form = await page.form()
    page.require("admin")
    sql, error = _sql(form.get("sql"))
    fmt = DOWNLOADS.get(str(form.get("format") or ""))
    if error or fmt is None:
        raise HTTPException(422, error or "format: csv or parquet")
    try:
        result = await _run(page.stores, sql)
    except NoSnapshot as exc:
        raise HTTPException(503, "no analytical copy yet") from exc
    except SandboxError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    media_type, filename = fmt
    body = iterate_in_threadpool(formats.chunks(result.table, media_type, result.truncated))
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/staff/console/reports/{name}")
async def report(name: str, page: PageDep) -> Response:
    page.require("admin")
    spec = REPORTS.get(name)
    if spec is None:
        raise HTTPException(404, "no such report")
    try:
        result = await _run(page.stores, spec.sql)
    except NoSnapshot:
        ctx = await _console(page, spec.sql, errors={"sql": "No analytical copy yet: run the ETL."})
        return page.render("staff/console.html", ctx, status=503)
    ctx = await _console(
        page, spec.sql, report=spec.title, result=_result_context(result, spec.title)
    )
    return page.render("staff/console.html", ctx)
