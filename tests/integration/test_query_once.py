"""Every documented GET route of the served app answers 422 naming the parameter when a
once-only query parameter is given twice (FastAPI alone would keep the last value: a
fuzzer found `GET /memberships?cursor=x&cursor=` answering 200, the first page)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.stores import Stores
from tests.support.auth import bearer


def _once_only_query_params(app: FastAPI) -> list[tuple[str, str]]:
    """(path, parameter) for each GET route without path parameters."""
    found = []
    for path, item in app.openapi()["paths"].items():
        operation: dict[str, Any] | None = item.get("get")
        if operation is None or "{" in path:
            continue
        for param in operation.get("parameters", []):
            schema = param.get("schema", {})
            kinds = [schema, *schema.get("anyOf", [])]
            if param["in"] == "query" and not any(k.get("type") == "array" for k in kinds):
                found.append((path, param["name"]))
    return found


async def test_a_once_only_parameter_given_twice_answers_422_naming_it(
    app: FastAPI, client: httpx.AsyncClient, stores: Stores
) -> None:
    params = _once_only_query_params(app)
    paths = {path for path, _ in params}
    assert {"/products", "/orders", "/memberships", "/search/products"} <= paths, paths
    for role in ("customer", "admin"):
        headers = await bearer(stores, role)
        for path, name in params:
            response = await client.get(path, params=[(name, "1"), (name, "")], headers=headers)
            assert response.status_code == 422, (role, path, name, response.text)
            fields = [e["field"] for e in response.json()["errors"]]
            assert fields == [f"query.{name}"], (role, path, name, fields)


async def test_repeatable_parameters_still_repeat(client: httpx.AsyncClient) -> None:
    response = await client.get("/search/products", params=[("brand", "a"), ("brand", "b")])
    assert response.status_code == 200, response.text
