"""The warehouse: orders to pack and ship, moved along pending -> paid -> shipped."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import RedirectResponse, Response

from storage import orders
from storage.postgres import read_connection
from web.backend import invalidate, invalidate_order
from web.context import PageDep
from web.errors import PageRoute

router = APIRouter(route_class=PageRoute)

FILTERS: dict[str, tuple[str, ...]] = {
    "open": ("pending", "paid"),
    "pending": ("pending",),
    "paid": ("paid",),
    "shipped": ("shipped",),
    "cancelled": ("cancelled",),
}
NEXT_STEP: dict[str, tuple[orders.Status, str]] = {
    "pending": ("paid", "Mark paid"),
    "paid": ("shipped", "Mark shipped"),
}
POLL_S = 3


async def _queue(page: PageDep, status: str) -> list[orders.Order]:
    async with read_connection(page.stores.pg) as conn:
        return await orders.queue(conn, statuses=FILTERS[status], limit=100)


def _status(raw: str) -> str:
    return raw if raw in FILTERS else "open"


@router.get("/staff/warehouse")
async def warehouse(page: PageDep, status: str = Query("open", max_length=20)) -> Response:
    page.require("warehouse", "admin")
    status = _status(status)
    return page.render(
        "staff/warehouse.html",
        {
            "orders": await _queue(page, status),
            "status": status,
            "filters": FILTERS,
            "next_step": NEXT_STEP,
            "poll_s": POLL_S,
        },
    )


@router.get("/staff/warehouse/queue")
async def queue_fragment(page: PageDep, status: str = Query("open", max_length=20)) -> Response:
    """The queue table alone: htmx polls it every few seconds (live updates)."""
    page.require("warehouse", "admin")
    status = _status(status)
    return page.render(
        "staff/_queue.html",
        {
            "orders": await _queue(page, status),
            "status": status,
            "next_step": NEXT_STEP,
            "poll_s": POLL_S,
        },
    )


@router.post("/staff/warehouse/{order_id}/transition")
async def transition(order_id: int, page: PageDep) -> Response:
    form = await page.form()
    page.require("warehouse", "admin")
    target = str(form.get("to") or "")
    back = f"/staff/warehouse?status={_status(str(form.get('status') or 'open'))}"
    if target not in ("paid", "shipped") or not 1 <= order_id < 2**63:
        raise HTTPException(422, "to: must be paid or shipped")
    try:
        async with page.stores.pg.connection() as conn, conn.transaction():
            result = await orders.change_status(conn, order_id, target)  # type: ignore[arg-type]
    except orders.IllegalTransition as exc:
        return RedirectResponse(f"{back}&error={exc.current}-{order_id}", status_code=303)
    if result is None:
        raise HTTPException(404, "no such order")
    await invalidate(page.request, result.product_versions)
    await invalidate_order(page.request, result)
    return RedirectResponse(back, status_code=303)
