"""The warehouse in a browser: the queue updates by itself, an order is paid and shipped."""

from __future__ import annotations

from app.stores import Stores
from storage import orders
from tests.integration.webui import data
from tests.integration.webui.conftest import Web


async def _order(stores: Stores, customer_id: int, product_id: int) -> int:
    async with stores.pg.connection() as conn, conn.transaction():
        placed = await orders.place(conn, customer_id=customer_id, items=[(product_id, 1)])
    return placed.order.id


async def test_warehouse_ships_an_order_and_sees_new_ones_arrive(stores: Stores, web: Web) -> None:
    product = await data.product(stores, name="Camping Tent", stock=10)
    _, customer_id = await data.new_key(stores, "customer")
    assert customer_id is not None
    first = await _order(stores, customer_id, product.id)
    key, _ = await data.new_key(stores, "warehouse")
    page = await web.page(width=390)  # a phone in the warehouse
    await web.sign_in(page, key)
    await page.wait_for_url("**/staff/warehouse")
    queue = page.get_by_test_id("queue")
    assert "Camping Tent" in await queue.inner_text()

    # an order placed while the page is open shows up without a reload (polling)
    second = await _order(stores, customer_id, product.id)
    await page.locator(f"tr[data-order='{second}']").wait_for()

    await page.get_by_role("button", name=f"Mark paid: order {first}").click()
    await page.get_by_role("button", name=f"Mark shipped: order {first}").click()
    await page.wait_for_load_state()
    async with stores.pg.connection() as conn:
        shipped = await orders.get(conn, first)
    assert shipped is not None and shipped.status == "shipped"
    # the open queue no longer lists it; the shipped filter does
    assert await page.locator(f"tr[data-order='{first}']").count() == 0
    await page.get_by_label("Show").select_option("shipped")
    await page.get_by_role("button", name="Filter").click()
    await page.locator(f"tr[data-order='{first}']").wait_for()
    await web.screenshot(page, "warehouse-phone")
    assert await web.axe(page) == []


async def test_a_polling_page_whose_session_expired_goes_to_sign_in_and_back(
    stores: Stores, web: Web
) -> None:
    key, _ = await data.new_key(stores, "warehouse")
    page = await web.page()
    await web.sign_in(page, key)
    await page.wait_for_url(f"{web.base}/staff/warehouse")
    async for name in stores.redis.scan_iter(match=f"{stores.settings.redis_prefix}web:session:*"):
        await stores.redis.delete(name)
    # the next poll answers HX-Redirect: the whole page goes to sign in, not the fragment
    await page.wait_for_url(f"{web.base}/signin?next=/staff/warehouse", timeout=20_000)
    await web.sign_in(page, key, "/staff/warehouse")
    await page.wait_for_url(f"{web.base}/staff/warehouse")
    await page.get_by_role("region", name="Order queue").wait_for()
