"""A shopper in a real browser: search, autocomplete, filter, product, cart, checkout
(one order for a double click), order history, cancel."""

from __future__ import annotations

from app.stores import Stores
from storage import orders
from tests.integration.webui import data
from tests.integration.webui.conftest import Web


async def _catalog(stores: Stores) -> dict[str, int]:
    lamp = await data.product(
        stores, name="Brass Desk Lamp", brand="Lumen", price_minor=4500, stock=3
    )
    await data.product(stores, name="Oak Desk Lamp", brand="Woodcraft", price_minor=8900)
    await data.product(stores, name="Floor Lamp <b>Tall</b>", brand="Lumen", price_minor=15000)
    await data.product(stores, name="Blue Rug", brand="Weave", category="Home/Textiles")
    await data.image(stores, lamp.id, (200, 150, 40))
    await data.image(stores, lamp.id, (40, 90, 200))
    await data.index(stores)
    return {"lamp": lamp.id}


async def test_shopper_searches_filters_buys_and_cancels(stores: Stores, web: Web) -> None:
    ids = await _catalog(stores)
    key, customer_id = await data.new_key(stores, "customer")
    page = await web.page()

    await page.goto(f"{web.base}/shop")
    assert "4 products" in await page.get_by_test_id("total").inner_text()
    # autocomplete: the suggest fragment lists the lamps as the person types
    await page.get_by_role("searchbox", name="Search products").press_sequentially("lam")
    await page.locator("#suggestions a", has_text="Brass Desk Lamp").wait_for()
    await page.get_by_role("searchbox", name="Search products").fill("lamp")
    await page.get_by_role("button", name="Search", exact=True).click()
    assert "3 products" in await page.get_by_test_id("total").inner_text()
    # a name with markup is shown as text, never as markup
    assert await page.get_by_text("Floor Lamp <b>Tall</b>").count() == 1
    # multi-select facets: brand Lumen and the price range under 50
    await page.get_by_label("Lumen").check()
    await page.get_by_role("button", name="Apply filters").click()
    assert "2 products" in await page.get_by_test_id("total").inner_text()
    await page.get_by_label("25.00 to 50.00").check()
    await page.get_by_role("button", name="Apply filters").click()
    assert "1 products" in await page.get_by_test_id("total").inner_text()
    thumb = page.get_by_test_id("results").locator("img")
    assert "200w" in (await thumb.get_attribute("srcset") or "")
    assert await thumb.evaluate("img => img.complete && img.naturalWidth > 0")
    await web.screenshot(page, "shop-search")
    assert await web.axe(page) == []

    await page.get_by_role("link", name="Brass Desk Lamp").click()
    assert await page.get_by_test_id("price").inner_text() == "45.00 USD"
    assert "In stock (3)" in await page.get_by_test_id("stock").inner_text()
    assert await page.get_by_test_id("gallery").locator(".thumbs img").count() == 2
    await page.get_by_label("Quantity").fill("2")
    await page.get_by_role("button", name="Add to cart").click()
    await page.wait_for_url("**/shop/cart")
    assert await page.get_by_test_id("cart-total").inner_text() == "90.00 USD"

    # checkout needs a customer: sign in and come back to the cart
    await page.get_by_role("link", name="Sign in as a customer").click()
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in with the key").click()
    await page.wait_for_url("**/shop/cart")
    await web.screenshot(page, "shop-cart")
    # a double click: both submissions carry the form's one Idempotency-Key
    await page.evaluate(
        "() => { const f = document.getElementById('checkout');"
        " f.removeAttribute('data-once');"
        " const fd = new FormData(f);"
        " fetch('/shop/checkout', {method: 'POST', body: new URLSearchParams(fd)}); }"
    )
    await page.get_by_role("button", name="Place order").click()
    await page.wait_for_url("**/shop/orders/*")
    assert await page.get_by_test_id("order-status").inner_text() == "pending"
    async with stores.pg.connection() as conn:
        history = await orders.history(conn, customer_id=customer_id, after=None, limit=10)
    assert len(history) == 1, "a double click placed more than one order"
    assert history[0].total_minor == 9000
    await web.screenshot(page, "shop-order")

    await page.get_by_role("link", name="All my orders").click()
    assert f"#{history[0].id}" in await page.get_by_test_id("orders").inner_text()
    await page.get_by_role("link", name=f"#{history[0].id}").click()
    await page.get_by_role("button", name="Cancel order").click()
    await page.wait_for_load_state()
    assert await page.get_by_test_id("order-status").inner_text() == "cancelled"
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT stock FROM products WHERE id = %s", (ids["lamp"],))
        row = await cur.fetchone()
    assert row is not None and row["stock"] == 3  # the stock came back
    assert await web.axe(page) == []
