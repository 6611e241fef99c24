"""`GET /products/{id}` without FastAPI's request handling: the shop's hottest request.

The FastAPI route (app/routes/products.py: get_product) documents the operation; this
thin route (app/routes/thin.py) stands before it and answers every well-formed id as a
plain ASGI endpoint: the cached bytes sent as they are with headers built once. It
answers exactly what the FastAPI route answers (200 with ETag, 304 for a matching
If-None-Match, 404 and 503 problems through the same exception handlers); any other id
(not a plain number in range: "0", "abc", "007") is handed to that route, whose
validation names the field or reads it as before.

Measured in docs/benchmarks.md ("The hot read path"): FastAPI's handler and dependency
solving were ~11 % of a cached read's samples.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.product_prefetch import prefetched_of
from app.routes.products import names_tag, product_entry
from app.routes.thin import first_header, hand_on, plain_id, send_json
from app.stores import Stores

PATH = "/products/{product_id}"
BARE_PATH = "/_bench/bare/{product_id}"


class ProductRead:
    """The ASGI endpoint. An id it leaves goes back through the app's router, which then
    skips this route: the FastAPI route of the same path answers it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        product_id = plain_id(scope["path_params"].get("product_id", ""))
        if product_id is None:
            await hand_on(scope, receive, send)
            return
        stores: Stores = scope["app"].state.stores
        entry = await product_entry(stores, product_id, prefetched_of(scope))
        etag = b'"%d"' % entry.version
        if names_tag(first_header(scope, b"if-none-match"), etag.decode()):
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag)]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send_json(send, entry.body, (b"etag", etag))


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
            await hand_on(scope, receive, send)
            return
        await send_json(send, entry.body, (b"etag", b'"%d"' % entry.version))


def product_read_routes(*, bench_routes: bool = False) -> list[tuple[str, ASGIApp]]:
    """The thin product read; with `bench_routes`, the benchmark's bare baseline too."""
    routes: list[tuple[str, ASGIApp]] = [(PATH, ProductRead())]
    if bench_routes:
        routes.append((BARE_PATH, BareRead()))
    return routes
