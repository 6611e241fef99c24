"""`GET /search/products` and `GET /search/suggest` from the search cache without
FastAPI's request handling.

The FastAPI routes (app/routes/search.py) document the operations, validate the query,
ask the engine through the cache and remember which cache entry each query string led
to (app/search_request_keys.py). These thin routes (app/routes/thin.py) stand before them
and answer only a hit: a query string the documented route already answered in this
process, whose entry is in the cache under the current search generation, sent as it
is. Every other request (a query string not seen yet, the cache off, a miss after a
bump, Redis failing) is handed to that route, which answers it as it would without
these.

Measured in docs/benchmarks.md ("Search answer cache"): through FastAPI a cached search
still cost the API ~2.4 core-ms (validation, the engine body built and hashed for the
key), against ~1 for a cached product read.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.routes.thin import hand_on, send_json
from app.stores import Stores
from search.cache import Kind

SEARCH_PATH = "/search/products"
SUGGEST_PATH = "/search/suggest"


class SearchRead:
    """The ASGI endpoint for one kind of answer; a request it leaves goes back through
    the app's router."""

    def __init__(self, kind: Kind) -> None:
        self.kind: Kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stores: Stores = scope["app"].state.stores
        cache = stores.product_search.cache
        digest = stores.search_request_keys.recall(self.kind, scope["query_string"])
        body = None
        if digest is not None and cache is not None:
            body = await cache.peek(self.kind, digest)
        if body is None:
            await hand_on(scope, receive, send)
            return
        await send_json(send, body)


def search_read_routes() -> list[tuple[str, ASGIApp]]:
    return [(SEARCH_PATH, SearchRead("products")), (SUGGEST_PATH, SearchRead("suggest"))]
