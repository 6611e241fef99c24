"""An admin in a browser: an edit meets another admin's save (conflict shown, then
overwrite), field errors, an image upload with preview seen on the storefront, delete."""

from __future__ import annotations

from playwright.async_api import FilePayload

from app.stores import Stores
from storage import products
from tests.integration.webui import data
from tests.integration.webui.conftest import Web


async def test_admin_edit_meets_a_conflict_and_overwrites(stores: Stores, web: Web) -> None:
    product = await data.product(stores, name="Garden Hose", price_minor=1999, stock=4)
    key, _ = await data.new_key(stores, "admin")
    mine = await web.page()
    await web.sign_in(mine, key, f"/staff/products/{product.id}")
    theirs = await web.page()  # same browser session, another tab: a second editor
    await theirs.goto(f"{web.base}/staff/products/{product.id}")

    await theirs.get_by_label("Stock").fill("40")
    await theirs.get_by_role("button", name="Save").click()
    await theirs.get_by_role("status").wait_for()

    await mine.get_by_label("Price (USD)").fill("24.50")
    await mine.get_by_role("button", name="Save").click()
    conflict = mine.get_by_test_id("conflict")
    assert "Changed by someone else" in await conflict.inner_text()
    assert "stock 40" in await conflict.inner_text()
    assert await mine.get_by_label("Price (USD)").input_value() == "24.50"  # kept
    await web.screenshot(mine, "admin-conflict")
    assert await web.axe(mine) == []
    await mine.get_by_role("button", name="Overwrite with my changes").click()
    await mine.get_by_role("status").wait_for()
    async with stores.pg.connection() as conn:
        saved = await products.get(conn, product.id)
    assert saved is not None
    assert saved.price_minor == 2450 and saved.stock == 4 and saved.version == 3

    # a bad value is named next to its field, and nothing is written
    await mine.get_by_label("Price (USD)").fill("12.345")
    await mine.get_by_role("button", name="Save").click()
    assert "at most 2 decimals" in await mine.locator("#f-price-error").inner_text()
    assert await mine.get_by_label("Price (USD)").get_attribute("aria-invalid") == "true"


async def test_admin_uploads_an_image_and_the_storefront_shows_it(stores: Stores, web: Web) -> None:
    product = await data.product(stores, name="Blue Planter")
    key, _ = await data.new_key(stores, "admin")
    page = await web.page()
    await web.sign_in(page, key, f"/staff/products/{product.id}")

    # not an image: the error shows next to the file field
    await page.get_by_label("Image (JPEG, PNG or WebP)").set_input_files(
        files=FilePayload(name="notes.png", mimeType="image/png", buffer=b"<b>not</b> an image")
    )
    await page.get_by_role("button", name="Upload").click()
    await page.locator("#file-error:not(:empty)").wait_for()
    assert "not a JPEG, PNG or WebP" in await page.locator("#file-error").inner_text()

    await page.get_by_label("Image (JPEG, PNG or WebP)").set_input_files(
        files=FilePayload(name="planter.png", mimeType="image/png", buffer=data.png((30, 60, 200)))
    )
    assert await page.locator("[data-preview]").is_visible()
    await page.get_by_label("Description of the image (alt text)").fill("A blue planter")
    await page.get_by_role("button", name="Upload").click()
    await page.get_by_test_id("images").get_by_role("img", name="A blue planter").wait_for()

    shop = await web.page()
    await shop.goto(f"{web.base}/shop/p/{product.id}")
    picture = shop.get_by_role("img", name="A blue planter")
    assert "200w" in (await picture.get_attribute("srcset") or "")
    assert await picture.evaluate("img => img.complete && img.naturalWidth > 0")
    await web.screenshot(shop, "shop-product-uploaded")

    await page.get_by_role("button", name="Delete image 1").click()
    await page.get_by_text("No images yet.").wait_for()


async def test_admin_reorders_images_with_the_keyboard_and_the_storefront_follows(
    stores: Stores, web: Web
) -> None:
    product = await data.product(stores, name="Striped Rug")
    for color, alt in (((200, 30, 30), "Red rug"), ((30, 160, 30), "Green rug")):
        await data.image(stores, product.id, color, alt)
    await data.image(stores, product.id, (30, 30, 200), "Blue rug")
    key, _ = await data.new_key(stores, "admin")
    page = await web.page()
    await web.sign_in(page, key, f"/staff/products/{product.id}")
    images = page.get_by_test_id("images")

    async def order() -> list[str]:
        return [
            str(a) for a in await images.locator("li img").evaluate_all("l => l.map(i => i.alt)")
        ]

    assert await order() == ["Red rug", "Green rug", "Blue rug"]
    # the first image has no "up", the last no "down"
    assert await page.get_by_role("button", name="Move image 1 up").count() == 0
    assert await page.get_by_role("button", name="Move image 3 down").count() == 0
    await page.get_by_role("button", name="Move image 3 up").focus()
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await order() == ["Red rug", "Blue rug", "Green rug"]
    # the focus stays with the moved image: Enter again moves it up once more
    assert await page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Move image 2 up"
    )
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await order() == ["Blue rug", "Red rug", "Green rug"]
    await web.screenshot(page, "admin-images-reordered")
    assert await web.axe(page) == []

    shop = await web.page()
    await shop.goto(f"{web.base}/shop/p/{product.id}")
    assert await shop.locator("#main-picture").get_attribute("alt") == "Blue rug"
    thumbs = (
        await shop.get_by_test_id("gallery")
        .locator(".thumbs img")
        .evaluate_all("l => l.map(i => i.alt)")
    )
    assert thumbs == ["Blue rug", "Red rug", "Green rug"]
    await web.screenshot(shop, "shop-product-reordered")
