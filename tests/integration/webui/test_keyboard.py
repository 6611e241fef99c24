"""Keyboard use and the phone-width layout: sign in and buy without a mouse."""

from __future__ import annotations

from app.stores import Stores
from tests.integration.webui import data
from tests.integration.webui.conftest import Web


async def test_a_shopper_signs_in_and_adds_to_cart_with_the_keyboard(
    stores: Stores, web: Web
) -> None:
    product = await data.product(stores, name="Wool Blanket", category="Home/Textiles")
    await data.image(stores, product.id, (180, 60, 60))
    await data.index(stores)
    key, _ = await data.new_key(stores, "customer")
    page = await web.page(width=375)

    await page.goto(f"{web.base}/signin")
    await page.keyboard.press("Tab")  # the first stop is the skip link
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.get_by_label("API key").focus()
    await page.keyboard.type(key)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/shop")

    # on a phone the page does not scroll sideways
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.get_by_role("link", name="Wool Blanket").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/shop/p/{product.id}")
    await page.get_by_role("button", name="Add to cart").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/shop/cart")
    assert await page.get_by_test_id("cart-count").inner_text() == "1"
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await web.screenshot(page, "shop-cart-phone")
    assert await web.axe(page) == []
    await page.goto(f"{web.base}/shop/p/{product.id}")
    await web.screenshot(page, "shop-product-phone")
    assert await web.axe(page) == []
