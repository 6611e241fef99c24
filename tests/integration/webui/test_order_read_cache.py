"""The web pages' order changes reach the API's cached order read (app/order_cache.py):
an order moved along on the warehouse page, or cancelled on the shopper's page, is read
with its new status by `GET /orders/{id}` right after, though that read was cached."""

from __future__ import annotations

import httpx

from app.stores import Stores
from storage import orders
from tests.integration.webui import data
from tests.integration.webui.conftest import Web


async def _order(stores: Stores, customer_id: int, product_id: int) -> int:
    async with stores.pg.connection() as conn, conn.transaction():
        placed = await orders.place(conn, customer_id=customer_id, items=[(product_id, 1)])
    return placed.order.id


async def _status(api: httpx.AsyncClient, order_id: int, key: str) -> str:
    response = await api.get(f"/orders/{order_id}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def test_a_change_on_the_pages_is_read_through_the_api_at_once(
    stores: Stores, web: Web
) -> None:
    product = await data.product(stores, name="Camping Stove", stock=10)
    customer_key, customer_id = await data.new_key(stores, "customer")
    assert customer_id is not None
    shipped = await _order(stores, customer_id, product.id)
    cancelled = await _order(stores, customer_id, product.id)
    warehouse_key, _ = await data.new_key(stores, "warehouse")
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as api:
        for _ in range(2):  # cached
            for order_id in (shipped, cancelled):
                assert await _status(api, order_id, customer_key) == "pending"

        staff = await web.page()
        await web.sign_in(staff, warehouse_key)
        await staff.wait_for_url("**/staff/warehouse")
        await staff.get_by_role("button", name=f"Mark paid: order {shipped}").click()
        await staff.get_by_role("button", name=f"Mark shipped: order {shipped}").wait_for()
        assert await _status(api, shipped, customer_key) == "paid"

        shopper = await web.page()
        await web.sign_in(shopper, customer_key, f"/shop/orders/{cancelled}")
        await shopper.wait_for_url(f"**/shop/orders/{cancelled}")
        await shopper.get_by_role("button", name="Cancel order").click()
        await shopper.wait_for_load_state()
        assert await _status(api, cancelled, customer_key) == "cancelled"
