"""`GET /products/{id}` without FastAPI's request handling: the shop's hottest request.

The FastAPI route (app/routes/products.py: get_product) documents the operation; this
thin route stands before it and answers every well-formed id as a plain ASGI endpoint:
no dependency solving, no Request object, no Response object, the cached bytes sent as
they are with headers built once. It answers exactly what the FastAPI route answers
(200 with ETag, 304 for a matching If-None-Match, 404 and 503 problems through the same
exception handlers); any other id (not a plain number in range: "0", "abc", "007") is
handed to that route, whose validation names the field or reads it as before.

Measured in docs/benchmarks.md ("The hot read path"): FastAPI's handler and dependency
solving were ~11 % of a cached read's samples.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.product_prefetch import plain_id, prefetched_of
from app.routes.products import names_tag, product_entry
from app.stores import Stores
from storage.product_cache import Entry

PATH = "/products/{product_id}"
BARE_PATH = "/_bench/bare/{product_id}"
_JSON = (b"content-type", b"application/json")
_HANDED_ON = "polyshop_product_read_handed_on"


class ProductRead:
    """The ASGI endpoint. An id it leaves goes back through the app's router, which then
    skips this route: the FastAPI route of the same path answers it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        product_id = plain_id(scope["path_params"].get("product_id", ""))
        if product_id is None:
            await _hand_on(scope, receive, send)
            return
        stores: Stores = scope["app"].state.stores
        entry = await product_entry(stores, product_id, prefetched_of(scope))
        etag = b'"%d"' % entry.version
        if _not_modified(scope, etag.decode()):
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag)]})
            await send({"type": "http.response.body", "body": b""})
            return
        await _send_entry(send, entry, etag)


class BareRead:
    """The benchmark's baseline in the same thin form (`/_bench/bare/{id}`, only with
    `bench_routes`): the bytes of a product from process memory, with the same headers.
    A product not yet in memory goes to the FastAPI route, which reads and keeps it; so
    `bench.hotpath`'s cached / bare compares the cache against the cheapest answer the
    app can give, not against FastAPI's request handling."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        product_id = plain_id(scope["path_params"].get("product_id", ""))
        memo = scope["app"].state.__dict__.get("bench_bare", {})
        entry = memo.get(product_id) if product_id is not None else None
        if entry is None:
            await _hand_on(scope, receive, send)
            return
        await _send_entry(send, entry, b'"%d"' % entry.version)


async def _hand_on(scope: Scope, receive: Receive, send: Send) -> None:
    """Back through the app's router, which then skips the thin routes: the FastAPI route
    of the same path answers."""
    scope[_HANDED_ON] = True
    await scope["router"](scope, receive, send)


async def _send_entry(send: Send, entry: Entry, etag: bytes) -> None:
    """200 with the entry's bytes as they are: ETag, length, JSON."""
    headers = [(b"etag", etag), (b"content-length", b"%d" % len(entry.body)), _JSON]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": entry.body})


class _ThinRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_HANDED_ON):
            return Match.NONE, {}
        return super().matches(scope)


def install_product_read(app: FastAPI, *, bench_routes: bool = False) -> None:
    """Put the thin route before every included router (so before the FastAPI route of
    the same path); with `bench_routes`, the benchmark's bare baseline too."""
    routes: list[tuple[str, ASGIApp]] = [(PATH, ProductRead())]
    if bench_routes:
        routes.append((BARE_PATH, BareRead()))
    for path, endpoint in routes:
        thin = _ThinRoute(path, endpoint, methods=["GET"], include_in_schema=False)
        thin.methods = {"GET"}  # as the FastAPI route: no implicit HEAD
        app.router.routes.insert(0, thin)


def _not_modified(scope: Scope, etag: str) -> bool:
    """If-None-Match (the first, as FastAPI's header parameter reads it) names the tag."""
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return names_tag(value.decode("latin-1"), etag)
    return False
