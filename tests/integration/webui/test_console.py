"""An admin runs the ETL from its page, then an analyst's query shows as a chart; the
built-in reports render as charts; status and API keys pages."""

from __future__ import annotations

import asyncio

from app.etl_schedule import etl_requests_task
from app.stores import Stores
from storage import orders
from tests.integration.webui import data
from tests.integration.webui.conftest import Web


async def _shop_with_orders(stores: Stores) -> None:
    lamp = await data.product(stores, name="Desk Lamp", stock=50, price_minor=3000)
    rug = await data.product(
        stores, name="Rug", stock=50, price_minor=9000, category="Home/Textiles"
    )
    _, customer_id = await data.new_key(stores, "customer")
    assert customer_id is not None
    async with stores.pg.connection() as conn, conn.transaction():
        for items in ([(lamp.id, 2)], [(rug.id, 1)], [(lamp.id, 1), (rug.id, 3)]):
            await orders.place(conn, customer_id=customer_id, items=items)


async def test_etl_run_now_then_a_query_and_its_chart(stores: Stores, web: Web) -> None:
    await _shop_with_orders(stores)
    key, _ = await data.new_key(stores, "admin")
    page = await web.page()
    await web.sign_in(page, key, "/staff/etl")
    await page.get_by_role("button", name="Run now").click()
    # the run is queued for the worker; this test plays the worker's etl-requests task
    stop = asyncio.Event()
    worker = asyncio.create_task(etl_requests_task(stores, stop))
    try:
        # the runs table polls itself while the run is on
        await page.get_by_test_id("etl-runs").get_by_text("succeeded").wait_for(timeout=120_000)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)

    await page.goto(f"{web.base}/staff/console")
    editor = page.locator(".cm-content")
    await editor.click()
    await page.keyboard.press("Control+a")
    await page.keyboard.type("SELECT p")
    # schema completion offers the star schema's tables
    await page.locator(".cm-tooltip-autocomplete").wait_for()
    await page.keyboard.press("Escape")
    await page.keyboard.press("Control+a")
    await page.keyboard.type(
        "SELECT p.name AS product_name, sum(quantity) AS units FROM fact_order_lines f "
        "JOIN dim_product p USING (product_key) GROUP BY 1 ORDER BY 1"
    )
    await page.get_by_role("button", name="Run query").click()
    await page.get_by_test_id("result").wait_for()
    assert "2 rows" in await page.get_by_test_id("row-count").inner_text()
    chart = page.get_by_test_id("chart").locator("svg")
    assert await chart.get_attribute("data-kind") == "bar"
    assert await chart.locator("rect").count() == 2
    await web.screenshot(page, "console-query")
    assert await web.axe(page) == []

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download CSV").click()
    download = await download_info.value
    assert download.suggested_filename == "result.csv"
    csv = (await download.path()).read_text()
    assert csv.splitlines()[0].replace('"', "") == "product_name,units"

    # a refused statement is shown next to the editor
    await editor.click()
    await page.keyboard.press("Control+a")
    await page.keyboard.type("DELETE FROM fact_order_lines")
    await page.get_by_role("button", name="Run query").click()
    assert await page.locator("#sql-error").inner_text() != ""

    await page.get_by_role("link", name="Revenue by day", exact=True).click()
    await page.get_by_test_id("chart").locator("svg[data-kind='line']").wait_for()
    await web.screenshot(page, "console-report")


async def test_status_and_keys_pages(stores: Stores, web: Web) -> None:
    key, _ = await data.new_key(stores, "admin")
    page = await web.page()
    await web.sign_in(page, key, "/staff/status")
    stores_table = await page.get_by_test_id("stores").inner_text()
    for name in ("postgres", "redis", "search", "blobs"):
        assert name in stores_table
    assert "postgres\tok" in stores_table
    await page.goto(f"{web.base}/staff/keys")
    await page.get_by_label("Role").select_option("customer")
    await page.get_by_role("button", name="Create key").click()
    assert "needs the customer" in await page.locator("#k-customer-error").inner_text()
    await page.get_by_label("Role").select_option("warehouse")
    await page.get_by_label("Customer id (customer keys)").fill("")
    await page.get_by_label("Name").fill("packing desk")
    await page.get_by_role("button", name="Create key").click()
    new_key = (await page.get_by_test_id("new-key").locator("code").inner_text()).strip()
    assert new_key.startswith("psk_")
    assert "packing desk" in await page.get_by_test_id("keys").inner_text()
    assert await web.axe(page) == []
    await page.get_by_role("button", name="Sign out (admin)").click()
    await web.sign_in(page, new_key)
    await page.wait_for_url("**/staff/warehouse")
