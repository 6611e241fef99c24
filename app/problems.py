"""RFC 9457 problem details: one error base class and the handlers that render every
error, the framework's included, as `application/problem+json`."""

from __future__ import annotations

import re

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from kit.problems import (
    PROBLEM_JSON,
    Conflict,
    Forbidden,
    InvalidField,
    NotFound,
    PreconditionFailed,
    Problem,
    ServiceUnavailable,
    Unauthorized,
    problem_response,
    render_problem,
)
from storage.errors import StoreUnavailable

# The problem types live in kit/ (domain packages raise them too); routes in app/ keep
# importing them from here, beside the handlers that render them.
__all__ = [
    "PROBLEM_JSON",
    "Conflict",
    "Forbidden",
    "InvalidField",
    "NotFound",
    "PreconditionFailed",
    "Problem",
    "ServiceUnavailable",
    "Unauthorized",
    "install_problem_handlers",
    "problem_response",
    "render_problem",
]

log = structlog.get_logger()


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return render_problem(request, exc)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    from http import HTTPStatus

    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    headers = dict(exc.headers or {})
    # Starlette names only the first route matching the path; a path served by
    # several routes (GET and DELETE /orders/{id}) must list all of them.
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return problem_response(request, exc.status_code, title, detail, headers)


def _allowed_methods(request: Request) -> str:
    """The methods the OpenAPI document lists for this path (empty: not documented).
    The most literal templates win: /images/uploads is not /images/{image_id}."""
    matches: dict[int, set[str]] = {}
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods = matches.setdefault(template.count("{"), set())
            methods |= {m.upper() for m in item if m in _HTTP_METHODS}
    methods = matches[min(matches)] if matches else set()
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD on every GET route
    return ", ".join(sorted(methods))


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body",
            "location": str(e.get("loc", ("body",))[0]),
            "message": e.get("msg", ""),
        }
        for e in exc.errors()
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem_response(
        request, 422, "Unprocessable Content", f"invalid input: {fields}", errors=errors
    )


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreUnavailable)
    log.warning("store.unavailable", store=exc.store, reason=exc.reason, path=request.url.path)
    return problem_response(
        request,
        503,
        "Service Unavailable",
        f"{exc.store} is unavailable, retry later",
        {"Retry-After": "5"},
        store=exc.store,
    )


async def _on_postgres_down(request: Request, exc: Exception) -> JSONResponse:
    """The pool had no healthy connection in time, or the server went away mid-request."""
    log.warning("store.unavailable", store="postgres", reason=str(exc)[:200], path=request.url.path)
    return problem_response(
        request,
        503,
        "Service Unavailable",
        "postgres is unavailable, retry later",
        {"Retry-After": "5"},
        store="postgres",
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    from app.middleware.request_id import HEADER, current_request_id

    log.exception("request.unhandled_error", path=request.url.path)
    # rendered outside the request-id middleware: echo the id here
    request_id = current_request_id()
    headers = {HEADER: request_id} if request_id else None
    return problem_response(request, 500, "Internal Server Error", headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StoreUnavailable, _on_unavailable)
    app.add_exception_handler(PoolTimeout, _on_postgres_down)
    app.add_exception_handler(psycopg.OperationalError, _on_postgres_down)
    app.add_exception_handler(Exception, _on_unexpected)
