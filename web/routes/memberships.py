"""Account: the customer's memberships (list, start with a plan, cancel).

The same schema (`memberships.schemas.MembershipIn`) and repository functions as the
JSON API at /memberships, in a transaction of the page's own; the API's validation
errors come back next to the field they name.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from memberships import repository
from memberships.clock import system_clock
from memberships.plans import PLANS
from memberships.schemas import MembershipIn
from storage.postgres import read_connection
from web import forms
from web.context import Page, PageDep
from web.errors import PageRoute

router = APIRouter(route_class=PageRoute)


async def _page(
    page: Page,
    customer_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    async with read_connection(page.stores.pg) as conn:
        found = await repository.for_customer(conn, customer_id)
    return page.render(
        "shop/memberships.html",
        {
            "memberships": found,
            "plans": list(PLANS.values()),
            "v": values or {"plan": "", "renews_at": ""},
            "errors": errors or {},
        },
        status=status,
    )


@router.get("/shop/memberships")
async def memberships_page(page: PageDep) -> Response:
    session = page.require("customer")
    assert session.customer_id is not None
    return await _page(page, session.customer_id)


@router.post("/shop/memberships")
async def start(page: PageDep) -> Response:
    form = await page.form()
    session = page.require("customer")
    assert session.customer_id is not None
    typed = {k: str(form.get(k) or "").strip() for k in ("plan", "renews_at")}
    now = system_clock()
    body: dict[str, object] = {"plan": typed["plan"]}
    if typed["renews_at"]:
        # a date input gives YYYY-MM-DD: the renewal is that day, 00:00 UTC
        body["renews_at"] = f"{typed['renews_at'][:40]}T00:00:00Z"
    try:
        wanted = MembershipIn.model_validate(body)
    except ValidationError as exc:
        return await _page(
            page, session.customer_id, values=typed, errors=forms.errors_by_field(exc), status=422
        )
    if wanted.renews_at is not None and wanted.renews_at <= now:
        errors = {"renews_at": "must be in the future"}
        return await _page(page, session.customer_id, values=typed, errors=errors, status=422)
    try:
        async with page.stores.pg.connection() as conn, conn.transaction():
            created = await repository.create(
                conn,
                customer_id=session.customer_id,
                plan=PLANS[wanted.plan],
                now=now,
                renews_at=wanted.renews_at,
                reminder_days=page.stores.settings.membership_reminder_days,
            )
    except repository.AlreadyActive:
        errors = {"plan": "You already have an active membership of this plan."}
        return await _page(page, session.customer_id, values=typed, errors=errors, status=409)
    return RedirectResponse(f"/shop/memberships?started={created.id}", 303)


@router.post("/shop/memberships/{membership_id}/cancel")
async def cancel(membership_id: int, page: PageDep) -> Response:
    await page.form()
    session = page.require("customer")
    now: datetime = system_clock()
    async with page.stores.pg.connection() as conn, conn.transaction():
        found = (
            await repository.get(conn, membership_id, lock=True)
            if 1 <= membership_id < 2**63
            else None
        )
        if found is None or found.customer_id != session.customer_id:
            raise HTTPException(404, "no such membership")
        await repository.cancel(conn, membership_id, now=now)
    return RedirectResponse(f"/shop/memberships?cancelled={membership_id}", 303)
