"""problem+json answers sent straight from ASGI middleware (no Request, no router)."""

from __future__ import annotations

from http import HTTPStatus

from starlette.requests import Request
from starlette.types import Scope, Send

from app.problems import problem_response


async def send_problem(
    scope: Scope,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    response = problem_response(Request(scope), status, HTTPStatus(status).phrase, detail, headers)

    async def no_body() -> dict[str, object]:  # the response is sent without reading it
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
