"""A customer's account in a browser: sign in with e-mail and password, the memberships
page (start with a plan, errors next to their field, cancel)."""

from __future__ import annotations

import uuid

from app.stores import Stores
from kit import passwords
from storage import customers
from tests.integration.webui import data
from tests.integration.webui.conftest import Web


async def customer_with_password(stores: Stores, password: str) -> tuple[int, str]:
    email = f"{uuid.uuid4().hex[:10]}@example.test"
    async with stores.pg.connection() as conn:
        made = await customers.create(conn, email=email, name="Pat Password")
        assert await customers.set_password_hash(conn, made.id, passwords.hash_password(password))
    return made.id, email


async def test_a_customer_signs_in_with_email_and_password(stores: Stores, web: Web) -> None:
    _, email = await customer_with_password(stores, "correct horse battery")
    page = await web.page()
    await page.goto(f"{web.base}/shop/orders")  # needs a session: off to sign in
    await page.wait_for_url("**/signin?next=/shop/orders")

    await page.get_by_label("E-mail").fill(email.upper())  # e-mail case does not matter
    await page.get_by_label("Password").fill("wrong horse")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    error = page.locator("#password-error")
    assert await error.inner_text() == "The e-mail or the password is wrong."
    assert await page.get_by_label("Password").get_attribute("aria-invalid") == "true"
    assert await page.get_by_label("E-mail").input_value() == email.upper()  # kept
    await web.screenshot(page, "signin-wrong-password")
    assert await web.axe(page) == []

    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{web.base}/shop/orders")
    await page.get_by_role("heading", name="My orders").wait_for()
    assert await page.get_by_role("button", name="Sign out (customer)").is_visible()

    # a page of another role: a page that says so (not JSON), with a way on
    answer = await page.goto(f"{web.base}/staff/products")
    assert answer is not None and answer.status == 403
    assert "needs the role admin" in await page.get_by_test_id("error").inner_text()
    await page.get_by_role("link", name="Sign in with another account").wait_for()
    await web.screenshot(page, "error-403-role")
    assert await web.axe(page) == []


async def test_memberships_start_with_field_errors_then_cancel(stores: Stores, web: Web) -> None:
    key, customer_id = await data.new_key(stores, "customer")
    page = await web.page()
    await web.sign_in(page, key)
    await page.get_by_role("link", name="Memberships").click()
    await page.wait_for_url(f"{web.base}/shop/memberships")
    table = page.get_by_test_id("memberships")
    assert "No memberships yet." in await table.inner_text()

    # no plan chosen: the schema's message, next to the plan
    await page.get_by_role("button", name="Start membership").click()
    assert "unknown plan" in await page.locator("#m-plan-error").inner_text()
    assert await page.get_by_label("Plan").get_attribute("aria-invalid") == "true"
    # a renewal in the past: next to the date, the plan kept
    await page.get_by_label("Plan").select_option("plus-monthly")
    await page.get_by_label("First renewal (optional)").fill("2020-01-01")
    await page.get_by_role("button", name="Start membership").click()
    assert "must be in the future" in await page.locator("#m-renews-error").inner_text()
    assert await page.get_by_label("Plan").input_value() == "plus-monthly"
    await web.screenshot(page, "account-membership-errors")
    assert await web.axe(page) == []

    await page.get_by_label("First renewal (optional)").fill("")
    await page.get_by_role("button", name="Start membership").click()
    await page.get_by_role("status").wait_for()
    row = table.locator("tbody tr").first
    assert "Plus (monthly)" in await row.inner_text() and "active" in await row.inner_text()

    # the same plan again: refused next to the plan
    await page.get_by_label("Plan").select_option("plus-monthly")
    await page.get_by_role("button", name="Start membership").click()
    assert "already have an active" in await page.locator("#m-plan-error").inner_text()

    membership_id = await row.get_attribute("data-membership-id")
    await page.get_by_role("button", name=f"Cancel membership {membership_id}").click()
    await page.get_by_text("The membership is cancelled").wait_for()
    assert "cancelled" in await table.locator("tbody tr").first.inner_text()
    await web.screenshot(page, "account-memberships")
    assert await web.axe(page) == []
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT status FROM memberships WHERE customer_id = %s", (customer_id,)
        )
        assert [r["status"] for r in await cur.fetchall()] == ["cancelled"]
