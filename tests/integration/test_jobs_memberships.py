"""Memberships: the API's refusals, the caller's list one page at a time (GET
/memberships, an opaque cursor), reminders scheduled in Postgres under a controlled
clock, swept into the outbox and e-mailed once; cancelled memberships send nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.stores import Stores
from memberships.clock import FixedClock
from memberships.routes import current_time
from memberships.tasks import sweep_once
from storage.cursor import encode_cursor
from tests.support.auth import bearer
from tests.support.jobs import jobs_rig, message_id_of

pytestmark = pytest.mark.timeout(180)

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock(app: FastAPI) -> FixedClock:
    fixed = FixedClock(T0)
    app.dependency_overrides[current_time] = fixed
    return fixed


async def _reminder_events(stores: Stores) -> list[dict[str, Any]]:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT id, aggregate_id, payload FROM outbox"
            " WHERE event_type = 'membership.reminder_due' ORDER BY id"
        )
        return list(await cur.fetchall())


async def test_bad_input_names_the_field_and_others_memberships_are_404(
    client: httpx.AsyncClient, stores: Stores, clock: FixedClock
) -> None:
    alice = await bearer(stores, "customer")
    bob = await bearer(stores, "customer")
    unknown = await client.post("/memberships", json={"plan": "gold"}, headers=alice)
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in unknown.json()["errors"]] == ["plan"]
    past = await client.post(
        "/memberships",
        json={"plan": "plus-yearly", "renews_at": (T0 - timedelta(days=1)).isoformat()},
        headers=alice,
    )
    assert past.status_code == 422
    assert [e["field"] for e in past.json()["errors"]] == ["renews_at"]
    created = await client.post("/memberships", json={"plan": "plus-yearly"}, headers=alice)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["price"] == "99.00" and body["status"] == "active"
    assert datetime.fromisoformat(body["renews_at"]) == T0 + timedelta(days=365)
    again = await client.post("/memberships", json={"plan": "plus-yearly"}, headers=alice)
    assert again.status_code == 409
    other = await client.get(f"/memberships/{body['id']}", headers=bob)
    assert other.status_code == 404
    assert (await client.delete(f"/memberships/{body['id']}", headers=bob)).status_code == 404
    later = {"renews_at": (T0 + timedelta(days=400)).isoformat()}
    moved = await client.patch(f"/memberships/{body['id']}", json=later, headers=bob)
    assert moved.status_code == 404
    back = {"renews_at": (T0 - timedelta(hours=1)).isoformat()}
    moved = await client.patch(f"/memberships/{body['id']}", json=back, headers=alice)
    assert moved.status_code == 422
    assert [e["field"] for e in moved.json()["errors"]] == ["renews_at"]
    assert (await client.get(f"/memberships/{body['id']}", headers=alice)).status_code == 200
    assert (await client.get("/memberships/1")).status_code == 401


async def test_reminder_200_days_ahead_is_due_3_days_before_and_sent_once(
    client: httpx.AsyncClient, stores: Stores, clock: FixedClock
) -> None:
    auth = await bearer(stores, "customer")
    renews = T0 + timedelta(days=200)
    created = await client.post(
        "/memberships", json={"plan": "plus-monthly", "renews_at": renews.isoformat()}, headers=auth
    )
    assert created.status_code == 201, created.text
    due = datetime.fromisoformat(created.json()["reminder_due_at"])
    assert due == renews - timedelta(days=3)
    days = stores.settings.membership_reminder_days
    # the day before it is due: nothing; once due: exactly one event, also when swept again
    clock.now = due - timedelta(days=1)
    assert (await sweep_once(stores.pg, reminder_days=days, clock=clock)).reminders == 0
    assert await _reminder_events(stores) == []
    clock.now = due + timedelta(minutes=5)
    first = await sweep_once(stores.pg, reminder_days=days, clock=clock)
    assert first.reminders == 1 and first.max_lag_s == pytest.approx(300)
    assert (await sweep_once(stores.pg, reminder_days=days, clock=clock)).reminders == 0
    [event] = await _reminder_events(stores)
    assert event["payload"]["renews_at"].startswith(renews.date().isoformat())
    async with jobs_rig(stores) as rig:
        counts = await rig.mailpit.wait_for([message_id_of(event["id"], stores)])
        assert list(counts.values()) == [1]
    # the renewal itself: one period later, with the next reminder scheduled
    clock.now = renews + timedelta(hours=1)
    assert (await sweep_once(stores.pg, reminder_days=days, clock=clock)).renewed == 1
    renewed = (await client.get(f"/memberships/{created.json()['id']}", headers=auth)).json()
    assert datetime.fromisoformat(renewed["renews_at"]) == renews + timedelta(days=30)
    assert datetime.fromisoformat(renewed["reminder_due_at"]) == renews + timedelta(days=27)


async def test_rescheduled_and_cancelled_memberships(
    client: httpx.AsyncClient, stores: Stores, clock: FixedClock
) -> None:
    auth = await bearer(stores, "customer")
    days = stores.settings.membership_reminder_days
    moved = (await client.post("/memberships", json={"plan": "plus-yearly"}, headers=auth)).json()
    later = T0 + timedelta(days=500)
    patched = await client.patch(
        f"/memberships/{moved['id']}", json={"renews_at": later.isoformat()}, headers=auth
    )
    assert patched.status_code == 200, patched.text
    assert datetime.fromisoformat(patched.json()["reminder_due_at"]) == later - timedelta(days=3)
    cancelled = (
        await client.post("/memberships", json={"plan": "pro-yearly"}, headers=auth)
    ).json()
    gone = await client.delete(f"/memberships/{cancelled['id']}", headers=auth)
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    assert gone.json()["reminder_due_at"] is None
    # past the old reminder date of the moved one and the cancelled one's: nothing is due
    clock.now = T0 + timedelta(days=400)
    result = await sweep_once(stores.pg, reminder_days=days, clock=clock)
    assert (result.reminders, result.renewed) == (0, 0)
    assert await _reminder_events(stores) == []
    again = await client.post("/memberships", json={"plan": "pro-yearly"}, headers=auth)
    assert again.status_code == 201  # cancelled: a new one of that plan may start


async def _start(
    client: httpx.AsyncClient, auth: dict[str, str], clock: FixedClock, plan: str, at: datetime
) -> int:
    clock.now = at
    created = await client.post("/memberships", json={"plan": plan}, headers=auth)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def _pages(
    client: httpx.AsyncClient, auth: dict[str, str], limit: int
) -> list[list[tuple[int, str]]]:
    """Every page, following next_cursor: (id, status) per membership."""
    pages, cursor = [], None
    while True:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/memberships", params=params, headers=auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([(m["id"], m["status"]) for m in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_the_list_pages_through_the_callers_own_active_first_then_newest(
    client: httpx.AsyncClient, stores: Stores, clock: FixedClock
) -> None:
    alice = await bearer(stores, "customer")
    bob = await bearer(stores, "customer")
    old = await _start(client, alice, clock, "plus-monthly", T0)
    yearly = await _start(client, alice, clock, "plus-yearly", T0 + timedelta(hours=1))
    pro = await _start(client, alice, clock, "pro-yearly", T0 + timedelta(hours=2))
    assert (await client.delete(f"/memberships/{old}", headers=alice)).status_code == 200
    renewed = await _start(client, alice, clock, "plus-monthly", T0 + timedelta(hours=3))
    bobs = await _start(client, bob, clock, "plus-monthly", T0 + timedelta(hours=4))

    pages = await _pages(client, alice, limit=2)
    assert pages == [
        [(renewed, "active"), (pro, "active")],
        [(yearly, "active"), (old, "cancelled")],
    ]
    assert await _pages(client, alice, limit=3) == [
        [(renewed, "active"), (pro, "active"), (yearly, "active")],
        [(old, "cancelled")],
    ]
    assert await _pages(client, bob, limit=20) == [[(bobs, "active")]]
    first = (await client.get("/memberships", headers=alice)).json()["items"][0]
    assert first == (await client.get(f"/memberships/{renewed}", headers=alice)).json()
    # a cursor says where the last page ended, not whose it is: bob gets his own after it
    cursor = (await client.get("/memberships", params={"limit": 1}, headers=alice)).json()
    after = await client.get("/memberships", params={"cursor": cursor["next_cursor"]}, headers=bob)
    assert [m["id"] for m in after.json()["items"]] == []  # bob's only one is newer


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": encode_cursor("orders", ["2026-01-10T12:00:00+00:00", 5])}, "cursor"),
        ({"cursor": encode_cursor("memberships", [2, "2026-01-10T12:00:00+00:00", 5])}, "cursor"),
        ({"cursor": encode_cursor("memberships", [1, "2026-01-10T12:00:00", 5])}, "cursor"),
        ({"cursor": encode_cursor("memberships", [1, "yesterday", 5])}, "cursor"),
        ({"cursor": encode_cursor("memberships", [1, "2026-01-10T12:00:00+00:00", 0])}, "cursor"),
        ({"cursor": "x" * 201}, "cursor"),
    ],
)
async def test_bad_parameters_are_a_422_naming_the_field(
    client: httpx.AsyncClient, stores: Stores, params: dict[str, str], field: str
) -> None:
    answer = await client.get(
        "/memberships", params=params, headers=await bearer(stores, "customer")
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    # named as the app names every query parameter it validates (as /orders' `limit`)
    assert [(e["field"], e["location"]) for e in answer.json()["errors"]] == [
        (f"query.{field}", "query")
    ]


async def test_only_a_signed_in_customer_lists_memberships(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    assert (await client.get("/memberships")).status_code == 401
    staff = await client.get("/memberships", headers=await bearer(stores, "warehouse"))
    assert staff.status_code == 403


async def test_the_list_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    listing = spec["paths"]["/memberships"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "cursor"}
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/MembershipPage")
