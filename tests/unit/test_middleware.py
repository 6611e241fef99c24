"""Request id and body size middleware against a stub ASGI app (no services)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from app.middleware.body_limit import BodySizeLimitMiddleware, body_limit_for
from app.middleware.request_id import (
    RequestIdMiddleware,
    accept_or_generate,
    current_request_id,
)
from app.settings import Settings

SETTINGS = Settings.model_validate({"max_body_bytes": 100, "image_max_bytes": 1000})


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body; answers with its size, the request id and the log context."""
    request = Request(scope, receive)
    body = await request.body()
    context = structlog.contextvars.get_contextvars()
    response = JSONResponse(
        {
            "size": len(body),
            "request_id": current_request_id(),
            "logged_request_id": context.get("request_id"),
        }
    )
    await response(scope, receive, send)


def client_for(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_a_well_formed_request_id_is_kept_and_echoed() -> None:
    async with client_for(RequestIdMiddleware(echo_app, access_log=False)) as c:
        response = await c.get("/", headers={"X-Request-ID": "abc-123-def.456"})
    assert response.headers["x-request-id"] == "abc-123-def.456"
    assert response.json()["request_id"] == "abc-123-def.456"
    assert response.json()["logged_request_id"] == "abc-123-def.456"


@pytest.mark.parametrize("bad", ["short", "has space in it", "x" * 200, 'evil"}{json', ""])
async def test_a_malformed_request_id_is_replaced(bad: str) -> None:
    async with client_for(RequestIdMiddleware(echo_app, access_log=False)) as c:
        response = await c.get("/", headers={"X-Request-ID": bad})
    rid = response.headers["x-request-id"]
    assert rid != bad
    assert len(rid) == 32
    assert response.json()["request_id"] == rid


async def test_each_request_gets_its_own_id_and_none_leaks_out() -> None:
    async with client_for(RequestIdMiddleware(echo_app, access_log=False)) as c:
        first = (await c.get("/")).headers["x-request-id"]
        second = (await c.get("/")).headers["x-request-id"]
    assert first != second
    assert current_request_id() is None
    assert "request_id" not in structlog.contextvars.get_contextvars()


def test_accept_or_generate() -> None:
    assert accept_or_generate("0f8fad5b-d9cb-469f-a165-70867728950e").startswith("0f8fad5b")
    assert accept_or_generate(None) != accept_or_generate(None)


async def test_a_body_within_the_limit_passes() -> None:
    async with client_for(BodySizeLimitMiddleware(echo_app, settings=SETTINGS)) as c:
        response = await c.post("/products", content=b"x" * 100)
    assert response.status_code == 200
    assert response.json()["size"] == 100


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async with client_for(BodySizeLimitMiddleware(echo_app, settings=SETTINGS)) as c:
        response = await c.post("/products", content=b"x" * 101)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert "100 bytes" in response.json()["detail"]


async def test_a_streamed_body_is_cut_off_at_the_limit() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 30

    async with client_for(BodySizeLimitMiddleware(echo_app, settings=SETTINGS)) as c:
        response = await c.post("/products", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_image_uploads_get_the_image_limit() -> None:
    assert body_limit_for("/products/7/images", SETTINGS) > 1000
    assert body_limit_for("/products/7", SETTINGS) == 100
    assert body_limit_for("/products/7/images/uploads", SETTINGS) == 100
    async with client_for(BodySizeLimitMiddleware(echo_app, settings=SETTINGS)) as c:
        response = await c.post("/products/7/images", content=b"z" * 500)
    assert response.status_code == 200


async def test_an_unhandled_error_is_logged_and_answered_with_the_request_id() -> None:
    from fastapi import FastAPI

    from app.problems import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestIdMiddleware, access_log=False)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/boom", headers={"X-Request-ID": "failing-request-1"})
    structlog.contextvars.clear_contextvars()
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "failing-request-1"
    errors = [e for e in logs if e["event"] == "request.unhandled_error"]
    assert errors and errors[0]["request_id"] == "failing-request-1"
