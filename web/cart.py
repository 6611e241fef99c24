"""The cart: product id -> quantity in a cookie (`12x1.34x2`). It holds nothing secret
and nothing trusted: checkout re-reads every product (price, stock) from Postgres."""

from __future__ import annotations

from fastapi import Request

COOKIE = "polyshop_cart"
MAX_LINES = 50
MAX_QUANTITY = 99


def parse(raw: str | None) -> dict[int, int]:
    cart: dict[int, int] = {}
    if not raw or len(raw) > 1500:
        return cart
    for item in raw.split(".")[:MAX_LINES]:
        pid, _, qty = item.partition("x")
        if pid.isdigit() and qty.isdigit() and 0 < int(pid) < 2**63 and int(qty) > 0:
            cart[int(pid)] = min(int(qty), MAX_QUANTITY)
    return cart


def read(request: Request) -> dict[int, int]:
    return parse(request.cookies.get(COOKIE))


def encode(cart: dict[int, int]) -> str:
    return ".".join(f"{pid}x{qty}" for pid, qty in cart.items() if qty > 0)
