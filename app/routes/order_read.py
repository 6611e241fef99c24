"""`GET /orders/{id}` without FastAPI's request handling: the authenticated hot read.

The FastAPI route (app/routes/orders.py: get_order) documents the operation; this thin
route (app/routes/thin.py) stands before it and answers every well-formed id with the
same two steps as that route: the API key (`authenticate`: 401 without a valid one, its
in-process cache with LISTEN/NOTIFY revocation as before), then the order
(app/order_cache.py: `order_body`, the order cache or Postgres; 404 for a missing order
and for another customer's, 503 while the stores it needs are out of reach). The bytes
and headers are those of the FastAPI route's `Response`. Any other id ("0", "abc",
"007", beyond bigint) is handed to that route, whose validation names the field.

The rate limiter's key bucket is untouched: it is middleware, before every route.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import authenticate
from app.order_cache import order_body
from app.product_prefetch import prefetched_of
from app.routes.thin import first_header, hand_on, plain_id, send_json
from app.stores import Stores

PATH = "/orders/{order_id}"


class OrderRead:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        order_id = plain_id(scope["path_params"].get("order_id", ""))
        if order_id is None:
            await hand_on(scope, receive, send)
            return
        stores: Stores = scope["app"].state.stores
        principal = await authenticate(stores, first_header(scope, b"authorization"))
        await send_json(send, await order_body(stores, order_id, principal, prefetched_of(scope)))


def order_read_routes() -> list[tuple[str, ASGIApp]]:
    return [(PATH, OrderRead())]
