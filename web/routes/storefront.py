"""The storefront: search with facets, product pages, the cart, checkout, own orders."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import RedirectResponse, Response

from images import repository
from search.query import (
    SORTS,
    SearchParams,
    SortName,
    decode_cursor,
    facets,
    price_ranges,
)
from storage import idempotency, orders, products
from storage.cursor import InvalidCursor
from storage.postgres import read_connection
from web import cart as cart_cookie
from web import media
from web.backend import Conn, invalidate, invalidate_order
from web.context import Page, PageDep, set_cookie
from web.errors import PageRoute

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 12
SORT_LABELS: dict[SortName, str] = {
    "relevance": "Best match",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "newest": "Newest",
    "rating": "Best rated",
}


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/shop", status_code=303)


def _price_range(keys: list[str], buckets: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """Several price buckets ticked: the range that covers them all."""
    chosen = [b for b in buckets if b["key"] in keys]
    if not chosen:
        return None, None
    lows = [b["from_minor"] for b in chosen]
    highs = [b["to_minor"] for b in chosen]
    low = None if None in lows else min(lows)
    high = None if None in highs else max(highs)
    return low, high


@router.get("/shop")
async def search_page(
    page: PageDep,
    q: str = Query("", max_length=200),
    category: str = Query("", max_length=300),
    brand: list[str] = Query([], max_length=20),
    price: list[str] = Query([], max_length=10),
    sort: str = "relevance",
    cursor: str = Query("", max_length=2000),
) -> Response:
    sort_name: SortName = sort if sort in SORTS else "relevance"
    buckets = facets(
        {"price": {"values": {"buckets": [{**r, "doc_count": 0} for r in price_ranges()]}}}
    )["price"]
    low, high = _price_range(price, buckets)
    after = None
    if cursor:
        try:
            after = decode_cursor(cursor, sort_name)
        except InvalidCursor:
            after = None
    params = SearchParams(
        q=q.strip(),
        category=category or None,
        brands=tuple(b for b in brand if b),
        min_price_minor=low,
        max_price_minor=None if high is None else high - 1,
        sort=sort_name,
        limit=PAGE_SIZE,
        search_after=after,
    )
    stores = page.stores
    result = await stores.product_search.search(params)  # the API's search, its cache
    ids = [h["id"] for h in result["hits"]]
    async with read_connection(stores.pg) as conn:
        primary = await repository.primary_images(conn, ids)
    for hit in result["hits"]:
        row = primary.get(hit["id"])
        hit["picture"] = media.picture(row) if row else None
    return page.render(
        "shop/search.html",
        {
            "q": q,
            "category": category,
            "brands": brand,
            "prices": price,
            "sort": sort_name,
            "sorts": SORT_LABELS,
            "result": result,
            "cursor": cursor,
        },
    )


@router.get("/shop/suggest")
async def suggest_fragment(page: PageDep, q: str = Query("", max_length=100)) -> Response:
    """The autocomplete list (an htmx fragment), from the same suggest as /search/suggest."""
    found = []
    if q.strip():
        found = await page.stores.product_search.suggest(q, 8)
    return page.render("shop/_suggest.html", {"suggestions": found, "q": q})


async def _product_or_404(page: Page, product_id: int) -> products.Product:
    if not 1 <= product_id < 2**63:
        raise HTTPException(404, "no such product")
    async with read_connection(page.stores.pg) as conn:
        product = await products.get(conn, product_id)
    if product is None or product.status == "draft":
        raise HTTPException(404, "no such product")
    return product


@router.get("/shop/p/{product_id}")
async def product_page(product_id: int, page: PageDep) -> Response:
    product = await _product_or_404(page, product_id)
    async with read_connection(page.stores.pg) as conn:
        rows = await repository.list_images(conn, product_id)
    return page.render(
        "shop/product.html",
        {"product": product, "pictures": [media.picture(r) for r in rows]},
    )


def _with_cart(page: Page, response: Response, cart: dict[int, int]) -> Response:
    set_cookie(
        page.request, response, cart_cookie.COOKIE, cart_cookie.encode(cart), max_age=30 * 86400
    )
    page.finish(response)
    return response


@router.post("/shop/cart")
async def cart_update(page: PageDep) -> Response:
    """Add (`add`=product id) or set quantities (`qty-<id>`); 0 removes a line."""
    form = await page.form()
    cart = dict(page.cart)
    add = str(form.get("add") or "")
    if add.isdigit():
        qty = str(form.get("quantity") or "1")
        await _product_or_404(page, int(add))
        cart[int(add)] = min(
            cart.get(int(add), 0) + (int(qty) if qty.isdigit() else 1), cart_cookie.MAX_QUANTITY
        )
    for name, value in form.multi_items():
        if name.startswith("qty-") and name[4:].isdigit() and isinstance(value, str):
            pid = int(name[4:])
            if value.strip().isdigit():
                cart[pid] = min(int(value), cart_cookie.MAX_QUANTITY)
    cart = {k: v for k, v in cart.items() if v > 0}
    return _with_cart(page, RedirectResponse("/shop/cart", status_code=303), cart)


async def _cart_lines(page: Page) -> tuple[list[dict[str, Any]], int, str]:
    lines: list[dict[str, Any]] = []
    total = 0
    currency = ""
    async with read_connection(page.stores.pg) as conn:
        pics = await repository.primary_images(conn, list(page.cart))
        for pid, qty in page.cart.items():
            product = await products.get(conn, pid)
            if product is None:
                continue
            row = pics.get(pid)
            lines.append(
                {
                    "product": product,
                    "quantity": qty,
                    "line_minor": product.price_minor * qty,
                    "picture": media.picture(row) if row else None,
                }
            )
            total += product.price_minor * qty
            currency = product.currency
    return lines, total, currency


@router.get("/shop/cart")
async def cart_page(page: PageDep) -> Response:
    lines, total, currency = await _cart_lines(page)
    # one key per rendering of the checkout form: a double click sends it twice, the
    # second is replayed; a reload gets a new key (a new attempt)
    return page.render(
        "shop/cart.html",
        {"lines": lines, "total": total, "currency": currency, "idem_key": uuid.uuid4().hex},
    )


async def _place(
    conn: Conn, customer_id: int, items: list[tuple[int, int]]
) -> tuple[idempotency.StoredResponse, list[tuple[int, int]]]:
    """Place the order: the answer to keep for the key, and the products whose stock moved."""
    if not items:
        return idempotency.StoredResponse(303, {"location": "/shop/cart"}, b""), []
    try:
        async with conn.transaction():  # a savepoint: a refusal undoes only the order
            placed = await orders.place(conn, customer_id=customer_id, items=items)
    except orders.OrderError as exc:
        return idempotency.StoredResponse(409, {}, _refusal_text(exc).encode()), []
    location = f"/shop/orders/{placed.order.id}"
    return idempotency.StoredResponse(303, {"location": location}, b""), placed.product_versions


def _refusal_text(exc: orders.OrderError) -> str:
    if isinstance(exc, orders.InsufficientStock):
        return f"Only {exc.available} of {exc.sku} left: lower the quantity."
    return str(exc)


@router.post("/shop/checkout")
async def checkout(page: PageDep) -> Response:
    form = await page.form()
    session = page.require("customer")
    assert session.customer_id is not None
    key = str(form.get("idempotency_key") or "").strip()
    if not key or len(key) > 255:
        raise HTTPException(422, "idempotency_key is missing")
    items = sorted(page.cart.items())
    scope = f"customer:{session.customer_id}"
    # The key names one rendering of the checkout form, whatever the cart holds when a
    # second click arrives (the first one's answer may have emptied the cart cookie).
    fingerprint = idempotency.fingerprint("POST", "/shop/checkout", {})
    stock_moved: list[tuple[int, int]] = []
    async with page.stores.pg.connection() as conn, conn.transaction():
        earlier = await idempotency.begin(conn, principal=scope, key=key, request_hash=fingerprint)
        if earlier is not None and earlier.response is not None:
            stored = earlier.response
        else:
            stored, stock_moved = await _place(conn, session.customer_id, items)
            if earlier is None:
                await idempotency.complete(conn, principal=scope, key=key, response=stored)
    await invalidate(page.request, stock_moved)
    if stored.status == 303:
        # an order exists (or the cart was empty): the cart is done, replayed clicks too
        return _with_cart(page, RedirectResponse(stored.headers["location"], 303), {})
    lines, total, currency = await _cart_lines(page)
    return page.render(
        "shop/cart.html",
        {
            "lines": lines,
            "total": total,
            "currency": currency,
            "idem_key": uuid.uuid4().hex,
            "error": stored.body.decode(),
        },
        status=409,
    )


@router.get("/shop/orders")
async def my_orders(page: PageDep) -> Response:
    session = page.require("customer")
    async with read_connection(page.stores.pg) as conn:
        history = await orders.history(conn, customer_id=session.customer_id, after=None, limit=50)
    return page.render("shop/orders.html", {"orders": history})


@router.get("/shop/orders/{order_id}")
async def my_order(order_id: int, page: PageDep) -> Response:
    session = page.require("customer")
    async with read_connection(page.stores.pg) as conn:
        order = await orders.get(conn, order_id) if 1 <= order_id < 2**63 else None
    if order is None or order.customer_id != session.customer_id:
        raise HTTPException(404, "no such order")
    return page.render("shop/order.html", {"order": order})


@router.post("/shop/orders/{order_id}/cancel")
async def cancel(order_id: int, page: PageDep) -> Response:
    await page.form()
    session = page.require("customer")
    try:
        async with page.stores.pg.connection() as conn, conn.transaction():
            result = await orders.change_status(
                conn, order_id, "cancelled", customer_id=session.customer_id
            )
    except orders.IllegalTransition:
        result = None
    if result is None:
        raise HTTPException(404, "no such order")
    await invalidate(page.request, result.product_versions)
    await invalidate_order(page.request, result)
    return RedirectResponse(f"/shop/orders/{order_id}", status_code=303)
