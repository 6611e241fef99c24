"""Error rendering without any service: validation errors name the field."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from app.problems import Conflict, install_problem_handlers


class Body(BaseModel):
    quantity: int


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things")
    async def create(body: Body) -> dict[str, int]:
        return {"quantity": body.quantity}

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already shipped", order_id=7)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    return app


def client(raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_validation_error_names_the_field() -> None:
    async with client() as c:
        response = await c.post("/things", json={"quantity": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"][0]["field"] == "quantity"
    assert "quantity" in body["detail"]


async def test_problem_carries_status_and_extra_fields() -> None:
    async with client() as c:
        response = await c.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "already shipped",
        "instance": "/conflict",
        "order_id": 7,
    }


async def test_unexpected_error_is_a_bare_500_problem() -> None:
    async with client(raise_app_exceptions=False) as c:
        response = await c.get("/boom")
    assert response.status_code == 500
    assert response.json()["title"] == "Internal Server Error"
    assert "bug" not in response.text
