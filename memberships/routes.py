"""POST /memberships, GET /memberships (a page of them), GET /memberships/{id},
PATCH /memberships/{id} (renewal date), DELETE /memberships/{id} (cancel): the calling
customer's own memberships only.

The app builds the router with its own dependencies (who the customer is, a
connection in a transaction, settings), so this package needs nothing from `app/`.
"""

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from psycopg import AsyncConnection

from memberships import repository
from memberships.clock import system_clock
from memberships.plans import PLANS
from memberships.repository import AlreadyActive, ListKey, Membership, list_key
from memberships.schemas import MembershipIn, MembershipOut, MembershipPage, MembershipPatch
from storage.cursor import InvalidCursor, decode_cursor, encode_cursor

_CURSOR_KIND = "memberships"
MAX_ID = 2**63 - 1


def current_time() -> datetime:
    """The routes' clock (tests override this dependency)."""
    return system_clock()


def _invalid(location: str, field: str, message: str) -> RequestValidationError:
    """A 422 naming the field, as the app renders request validation errors."""
    return RequestValidationError(
        [{"loc": (location, field), "msg": message, "type": "value_error"}]
    )


def _future(field: str, value: datetime, now: datetime) -> None:
    if value <= now:
        raise _invalid("body", field, f"must be in the future (now is {now.isoformat()})")


def _encode_cursor(m: Membership) -> str:
    active, started, membership_id = list_key(m)
    return encode_cursor(_CURSOR_KIND, [active, started.isoformat(), membership_id])


def _decode_cursor(cursor: str) -> ListKey:
    try:
        active, started, membership_id = decode_cursor(cursor, _CURSOR_KIND, 3)
        if (
            active not in (0, 1)
            or not isinstance(active, int)
            or not isinstance(started, str)
            or not isinstance(membership_id, int)
            or not 1 <= membership_id <= MAX_ID
        ):
            raise InvalidCursor("wrong types or ranges")
        when = datetime.fromisoformat(started)
        if when.tzinfo is None:
            raise InvalidCursor("no time zone")
    except ValueError as exc:  # InvalidCursor is one
        raise _invalid("query", "cursor", "not a cursor we issued") from exc
    return (active, when, membership_id)


def _out(m: Membership) -> MembershipOut:
    plan = PLANS.get(m.plan)
    return MembershipOut(
        id=m.id,
        plan=m.plan,
        plan_name=plan.name if plan else m.plan,
        price=Decimal(m.price_minor).scaleb(-2),
        currency=m.currency,
        status=m.status,
        started_at=m.started_at,
        renews_at=m.renews_at,
        cancelled_at=m.cancelled_at,
        reminder_due_at=m.reminder_due_at,
    )


def build_router(
    *,
    customer_id: Callable[..., Any],
    transaction: Callable[..., AsyncIterator[AsyncConnection[Any]]],
    read_connection: Callable[..., AsyncIterator[AsyncConnection[Any]]],
    reminder_days: Callable[..., Any],
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """`customer_id`: a dependency giving the caller's customer id (401/403 otherwise);
    `transaction`: one yielding a connection inside a transaction (committed on
    success); `read_connection`: one yielding a connection for reads only;
    `reminder_days`: one giving the reminder lead time."""
    router = APIRouter(prefix="/memberships", tags=["memberships"], responses=responses or {})
    Customer = Annotated[int, Depends(customer_id)]
    Conn = Annotated[AsyncConnection[Any], Depends(transaction, scope="function")]
    ReadConn = Annotated[AsyncConnection[Any], Depends(read_connection, scope="function")]
    Now = Annotated[datetime, Depends(current_time)]
    Days = Annotated[float, Depends(reminder_days)]

    async def _own(conn: AsyncConnection[Any], membership_id: int, customer: int) -> Membership:
        found = await repository.get(conn, membership_id, lock=True)
        if found is None or found.customer_id != customer:
            # another customer's membership does not exist for this caller
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no membership {membership_id}")
        return found

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Start a membership")
    async def create_membership(
        body: MembershipIn, customer: Customer, conn: Conn, now: Now, days: Days
    ) -> MembershipOut:
        if body.renews_at is not None:
            _future("renews_at", body.renews_at, now)
        try:
            created = await repository.create(
                conn,
                customer_id=customer,
                plan=PLANS[body.plan],
                now=now,
                renews_at=body.renews_at,
                reminder_days=days,
            )
        except AlreadyActive:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"an active {body.plan} membership exists already"
            ) from None
        return _out(created)

    @router.get("", summary="The caller's memberships: active ones first, then the newest")
    async def list_memberships(
        customer: Customer,
        conn: ReadConn,
        limit: Annotated[int, Query(ge=1, le=100, description="memberships per page")] = 20,
        cursor: Annotated[
            str | None, Query(max_length=200, description="`next_cursor` of the page before")
        ] = None,
    ) -> MembershipPage:
        after = _decode_cursor(cursor) if cursor else None
        found = await repository.for_customer(conn, customer, after=after, limit=limit + 1)
        page = found[:limit]
        more = len(found) > limit
        return MembershipPage(
            items=[_out(m) for m in page], next_cursor=_encode_cursor(page[-1]) if more else None
        )

    @router.get("/{membership_id}", summary="One of the caller's memberships")
    async def get_membership(membership_id: int, customer: Customer, conn: Conn) -> MembershipOut:
        return _out(await _own(conn, membership_id, customer))

    @router.patch("/{membership_id}", summary="Move the renewal date (and its reminder)")
    async def change_membership(
        membership_id: int,
        body: MembershipPatch,
        customer: Customer,
        conn: Conn,
        now: Now,
        days: Days,
    ) -> MembershipOut:
        found = await _own(conn, membership_id, customer)
        _future("renews_at", body.renews_at, now)
        if found.status != "active":
            raise HTTPException(status.HTTP_409_CONFLICT, "the membership is cancelled")
        changed = await repository.change_renewal(
            conn, membership_id, body.renews_at, now=now, reminder_days=days
        )
        return _out(changed)

    @router.delete("/{membership_id}", summary="Cancel: no renewal, no reminder")
    async def cancel_membership(
        membership_id: int, customer: Customer, conn: Conn, now: Now
    ) -> MembershipOut:
        await _own(conn, membership_id, customer)
        return _out(await repository.cancel(conn, membership_id, now=now))

    return router
