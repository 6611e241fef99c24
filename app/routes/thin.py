"""Thin ASGI routes: the hottest reads answered without FastAPI's request handling.

A thin route stands before the documented FastAPI route of the same path and method
(which stays the operation of the OpenAPI document): no dependency solving, no Request
or Response object, the body sent with headers built once. It answers what the FastAPI
route answers, raising the same problems (rendered by the app's exception handlers), and
hands every request it does not take (an id that is not plain) back to the router,
which then skips the thin routes: the FastAPI route answers it, its validation naming
the field. Used by app/routes/product_read.py and app/routes/order_read.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.schemas.orders import MAX_ID

JSON = (b"content-type", b"application/json")
_HANDED_ON = "polyshop_thin_route_handed_on"

Header = tuple[bytes, bytes]


def plain_id(text: str) -> int | None:
    """An id in its plain decimal form (1 to the bigint maximum, no sign, no leading
    zero); None for anything else."""
    if not text.isascii() or not text.isdigit() or text.startswith("0") or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def first_header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (as Starlette's `headers.get` reads it), without
    decoding the others."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def hand_on(scope: Scope, receive: Receive, send: Send) -> None:
    """Back through the app's router, which then skips the thin routes: the FastAPI route
    of the same path answers."""
    scope[_HANDED_ON] = True
    await scope["router"](scope, receive, send)


async def send_json(send: Send, body: bytes, *first: Header) -> None:
    """200 with a JSON body as it is: the `first` headers, then length and type (the order
    a Starlette `Response(body, media_type="application/json", headers=...)` sends)."""
    headers = [*first, (b"content-length", b"%d" % len(body)), JSON]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _ThinRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_HANDED_ON):
            return Match.NONE, {}
        return super().matches(scope)


def is_thin(route: BaseRoute) -> bool:
    return isinstance(route, _ThinRoute)


def install_thin_routes(app: FastAPI, routes: Iterable[tuple[str, ASGIApp]]) -> None:
    """Put each `(path, endpoint)` as a GET route before every included router (so before
    the FastAPI route of the same path)."""
    for path, endpoint in routes:
        thin = _ThinRoute(path, endpoint, methods=["GET"], include_in_schema=False)
        thin.methods = {"GET"}  # as the FastAPI routes: no implicit HEAD
        app.router.routes.insert(0, thin)
