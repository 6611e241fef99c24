"""A FastAPI dependency that answers 422 when a query parameter a route takes once is
given more than once (`?cursor=a&cursor=b`); FastAPI would silently keep the last."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_MULTI_ORIGINS = (list, tuple, set, frozenset)


def reject_repeated_query_params(request: Request) -> None:
    """422 naming `query.<name>` for the first once-only parameter given twice."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    once = once_only_query_names(route)
    if not once:
        return
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key not in once:
            continue
        if key in seen:
            raise RequestValidationError(
                [{"loc": ("query", key), "msg": "give this parameter once", "type": "value_error"}]
            )
        seen.add(key)


_CACHED = "_polyshop_once_only_query_names"  # kept on the route (routes are unhashable)


def once_only_query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters (by their wire name) of `route` that take a single value."""
    names: frozenset[str] | None = getattr(route, _CACHED, None)
    if names is None:
        names = frozenset(
            field.alias
            for field in _query_fields(route.dependant)
            if not takes_many(field.field_info.annotation)
        )
        setattr(route, _CACHED, names)
    return names


def _query_fields(dependant: Dependant) -> Iterator[typing.Any]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def takes_many(annotation: object) -> bool:
    """Whether a parameter annotated so takes repeated values (a list, tuple or set)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return takes_many(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(takes_many(arg) for arg in typing.get_args(annotation))
    return origin in _MULTI_ORIGINS or annotation in _MULTI_ORIGINS
