"""kit/query_once.py: a once-only query parameter given twice answers 422 naming it."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query

from app.problems import install_problem_handlers
from kit.query_once import reject_repeated_query_params, takes_many


def _paging(cursor: Annotated[str | None, Query()] = None) -> str | None:
    return cursor


def _client() -> httpx.AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)
    router = APIRouter(dependencies=[Depends(reject_repeated_query_params)])

    @router.get("/items")
    async def items(
        page: Annotated[str | None, Depends(_paging)],
        brand: Annotated[list[str] | None, Query()] = None,
        limit: int = 10,
    ) -> dict[str, object]:
        return {"cursor": page, "brand": brand, "limit": limit}

    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_a_repeated_once_only_parameter_answers_422_naming_it() -> None:
    async with _client() as client:
        for query, field in [
            ("cursor=a&cursor=", "query.cursor"),  # from a sub-dependency
            ("limit=1&limit=2", "query.limit"),
            ("limit=1&brand=x&limit=1", "query.limit"),  # even the same value twice
        ]:
            response = await client.get(f"/items?{query}")
            assert response.status_code == 422, query
            body = response.json()
            assert [e["field"] for e in body["errors"]] == [field], query
            assert body["errors"][0]["message"] == "give this parameter once"


async def test_repeatable_and_single_parameters_still_work() -> None:
    async with _client() as client:
        response = await client.get("/items?brand=a&brand=b&cursor=c&limit=3&other=1&other=2")
    assert response.status_code == 200
    assert response.json() == {"cursor": "c", "brand": ["a", "b"], "limit": 3}


def test_which_annotations_take_many() -> None:
    assert takes_many(list[str])
    assert takes_many(list[str] | None)
    assert takes_many(Annotated[tuple[int, ...] | None, Query()])
    assert takes_many(set[str])
    assert not takes_many(str)
    assert not takes_many(str | None)
    assert not takes_many(Annotated[int, Query()])
