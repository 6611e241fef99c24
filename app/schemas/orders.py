"""Request and response models of the orders API. Money leaves the API as decimal
strings ("199.99"): prices are kept in minor units with two decimals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from kit.json_types import JSON_INTEGER
from storage.money import format_minor
from storage.orders import Order

MAX_ID = 2**63 - 1  # Postgres bigint
MAX_LINES = 100
MAX_QUANTITY = 10_000


class OrderItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # JSON Schema integers: "5" and true are not product ids or quantities, 5.0 is 5
    product_id: Annotated[int, Field(ge=1, le=MAX_ID), JSON_INTEGER]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), JSON_INTEGER]


class OrderIn(BaseModel):
    """Lines naming the same product are merged (their quantities added); the order
    lists its lines by product id."""

    model_config = ConfigDict(extra="forbid")

    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_LINES)


class OrderLineOut(BaseModel):
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: str = Field(description="price of one unit when the order was placed")
    line_total: str


class OrderOut(BaseModel):
    id: int
    customer_id: int
    status: Literal["pending", "paid", "shipped", "cancelled"]
    items: list[OrderLineOut]
    total: str
    currency: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            customer_id=order.customer_id,
            status=order.status,
            items=[
                OrderLineOut(
                    product_id=line.product_id,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price=format_minor(line.unit_price_minor),
                    line_total=format_minor(line.line_total_minor),
                )
                for line in order.lines
            ],
            total=format_minor(order.total_minor),
            currency=order.currency,
            version=order.version,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


def order_json(order: Order) -> bytes:
    """The order's response body (GET, POST, and the cached read serve these bytes)."""
    return OrderOut.of(order).model_dump_json().encode()


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next (older) page; null on the last page"
    )


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["paid", "shipped"]
