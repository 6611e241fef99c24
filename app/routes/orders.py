"""Orders API: place (idempotent, Stripe style), list, read, cancel, move along.

`POST /orders` needs an `Idempotency-Key` header (422 without). The first response to a
key (success or a refusal such as 409 out of stock) is stored and replayed byte for byte
to every retry with the same key, marked `Idempotent-Replayed: true`; a retry that
arrives while the first request still runs waits for it (on any replica) and then
replays it. The same key with a different body is a 422. Keys are scoped to the customer.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response

from app.auth import CustomerDep, PrincipalDep, WarehouseDep
from app.deps import StoresDep
from app.order_cache import invalidate_orders, order_body
from app.problems import (
    PROBLEM_JSON,
    Conflict,
    Forbidden,
    InvalidField,
    NotFound,
    Problem,
    problem_response,
)
from app.product_prefetch import prefetched_of
from app.schemas.orders import MAX_ID, OrderIn, OrderOut, OrderPage, TransitionIn, order_json
from app.stores import Stores
from app.transaction import ReadConnectionDep, TransactionDep
from kit.transaction import RequestTransaction
from storage import idempotency, orders
from storage.cursor import decode_cursor, encode_cursor

router = APIRouter(tags=["orders"])

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_CURSOR_KIND = "orders"
OrderId = Annotated[int, Path(ge=1, le=MAX_ID, description="order id")]


def _refusal(exc: orders.OrderError) -> Problem:
    """The 4xx answering a request the data does not allow."""
    if isinstance(exc, orders.UnknownProduct):
        return InvalidField("items.product_id", str(exc), product_id=exc.product_id)
    if isinstance(exc, orders.InsufficientStock):
        return Conflict(str(exc), product_id=exc.product_id, sku=exc.sku, available=exc.available)
    if isinstance(exc, orders.ProductNotForSale):
        return Conflict(str(exc), product_id=exc.product_id, sku=exc.sku)
    if isinstance(exc, orders.TotalTooLarge):
        return InvalidField("items", str(exc))
    if isinstance(exc, orders.MixedCurrencies):
        return InvalidField("items", str(exc), currencies=exc.currencies)
    if isinstance(exc, orders.IllegalTransition):
        return Conflict(str(exc), field="status", current=exc.current)
    return Problem(str(exc), status=422, title="Unprocessable Content")


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    summary="Place an order (idempotent: send an Idempotency-Key header)",
    responses={
        409: {"description": "not enough stock (names the product), or not for sale"},
        422: {
            "description": "invalid body, Idempotency-Key missing, blank or too long, unknown "
            "product, mixed currencies, or the Idempotency-Key was used with a different body"
        },
    },
)
async def place_order(
    request: Request,
    order_in: OrderIn,
    tx: TransactionDep,
    principal: CustomerDep,
    idempotency_key: Annotated[
        str,
        Header(
            alias=IDEMPOTENCY_HEADER,
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            pattern=r"\S",  # not blank (a search, as JSON Schema patterns are)
            description="required; unique per order attempt, retries reuse it "
            f"(max {MAX_KEY_LENGTH} characters)",
        ),
    ],
) -> Response:
    # HTTP already strips the whitespace around a header value; this strips it for
    # callers that bypass HTTP (the ASGI test client), so " k" and "k" are one key
    key = idempotency_key.strip()
    assert principal.customer_id is not None  # the customer role always has one
    scope = f"customer:{principal.customer_id}"
    fingerprint = idempotency.fingerprint("POST", "/orders", order_in.model_dump(mode="json"))
    conn = await tx.connection()
    earlier = await idempotency.begin(conn, principal=scope, key=key, request_hash=fingerprint)
    if earlier is not None:
        if not earlier.same_request:
            raise InvalidField(
                IDEMPOTENCY_HEADER,
                "already used with a different request",
                location="header",
            )
        if earlier.response is None:  # not written by this code; be safe
            raise Conflict(
                "a request with this Idempotency-Key is in progress",
                headers={"Retry-After": "1"},
                field=IDEMPOTENCY_HEADER,
            )
        return _replay(earlier.response)
    try:
        async with conn.transaction():  # a savepoint: a refusal undoes only the order
            placed = await orders.place(
                conn,
                customer_id=principal.customer_id,
                items=[(i.product_id, i.quantity) for i in order_in.items],
            )
        order = placed.order
        # after the commit, before answering: the new stock is read through the cache
        tx.products_changed(placed.product_versions)
        stored = idempotency.StoredResponse(
            status=201,
            headers={"content-type": "application/json", "location": f"/orders/{order.id}"},
            body=order_json(order),
        )
    except orders.OrderError as exc:
        problem = _refusal(exc)
        rendered = problem_response(
            request, problem.status, problem.title, problem.detail, None, **problem.extra
        )
        stored = idempotency.StoredResponse(
            status=problem.status,
            headers={"content-type": PROBLEM_JSON},
            body=bytes(rendered.body),
        )
    await idempotency.complete(conn, principal=scope, key=key, response=stored)
    return Response(content=stored.body, status_code=stored.status, headers=stored.headers)


def _replay(stored: idempotency.StoredResponse) -> Response:
    return Response(
        content=stored.body,
        status_code=stored.status,
        headers={**stored.headers, "idempotent-replayed": "true"},
    )


def _encode_cursor(order: orders.Order) -> str:
    return encode_cursor(_CURSOR_KIND, [order.created_at.isoformat(), order.id])


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        created, order_id = decode_cursor(cursor, _CURSOR_KIND, 2)
        if not isinstance(created, str) or not isinstance(order_id, int):
            raise ValueError("wrong types")
        parsed = (datetime.fromisoformat(created), order_id)
        if parsed[0].tzinfo is None or not 1 <= parsed[1] <= MAX_ID:
            raise ValueError("out of range")
        return parsed
    except ValueError as exc:  # InvalidCursor is one
        raise InvalidField("cursor", "not a cursor we issued", "query") from exc


@router.get(
    "/orders",
    response_model=OrderPage,
    summary="Order history, newest first (customers: their own; warehouse, admin: all)",
)
async def list_orders(
    conn: ReadConnectionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    customer_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="warehouse and admin only: one customer")
    ] = None,
) -> OrderPage:
    if principal.role == "customer":
        if customer_id is not None and customer_id != principal.customer_id:
            raise Forbidden("customers see only their own orders")
        customer_id = principal.customer_id
    after = _decode_cursor(cursor) if cursor else None
    page = await orders.history(conn, customer_id=customer_id, after=after, limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return OrderPage(
        items=[OrderOut.of(o) for o in page],
        next_cursor=_encode_cursor(page[-1]) if more else None,
    )


_NO_ORDER: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such order (or another customer's)"}
}


@router.get("/orders/{order_id}", response_model=OrderOut, summary="One order", responses=_NO_ORDER)
async def get_order(
    request: Request, order_id: OrderId, stores: StoresDep, principal: PrincipalDep
) -> Response:
    # Served by the thin route (app/routes/order_read.py) for every well-formed id;
    # this route documents the operation and answers the ids it leaves to FastAPI.
    body = await order_body(stores, order_id, principal, prefetched_of(request.scope))
    return Response(body, media_type="application/json")


@router.delete(
    "/orders/{order_id}",
    response_model=OrderOut,
    summary="Cancel an order (owner or admin); gives its stock back",
    responses={**_NO_ORDER, 409: {"description": "the order has shipped"}},
)
async def cancel_order(
    order_id: OrderId, tx: TransactionDep, stores: StoresDep, principal: PrincipalDep
) -> OrderOut:
    if principal.role not in ("customer", "admin"):
        raise Forbidden("this needs the role customer or admin")
    owner = principal.customer_id if principal.role == "customer" else None
    return await _change(tx, stores, order_id, "cancelled", owner)


@router.post(
    "/orders/{order_id}/transitions",
    response_model=OrderOut,
    summary="Move an order along: pending -> paid -> shipped (warehouse or admin)",
    responses={**_NO_ORDER, 409: {"description": "the order's status does not allow that"}},
)
async def transition_order(
    order_id: OrderId,
    tx: TransactionDep,
    stores: StoresDep,
    principal: WarehouseDep,
    transition: Annotated[TransitionIn, Body()],
) -> OrderOut:
    return await _change(tx, stores, order_id, transition.status, None)


async def _change(
    tx: RequestTransaction,
    stores: Stores,
    order_id: int,
    target: orders.Status,
    owner: int | None,
) -> OrderOut:
    conn = await tx.connection()
    try:
        result = await orders.change_status(conn, order_id, target, customer_id=owner)
    except orders.OrderError as exc:
        raise _refusal(exc) from exc
    if result is None:
        raise NotFound(f"no order {order_id}")
    tx.products_changed(result.product_versions)
    if result.changed:  # its cached read, on every replica, before the answer
        changed = [(result.order.id, result.order.version)]
        tx.after_commit(functools.partial(invalidate_orders, stores, changed))
    return OrderOut.of(result.order)
