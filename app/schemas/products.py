"""Product payloads: what clients send and what the API returns (design.md payloads).

Prices travel as decimal strings ("199.99") and are stored in minor units (cents).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer

from app.schemas.images import ImageOut
from storage.products import Product

MINOR_PER_UNIT = 100  # every supported currency has two decimals (validated below)
MAX_PRICE = Decimal("1000000000000")  # keeps price_minor well inside bigint

Status = Literal["active", "draft", "archived"]
Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Text = Annotated[str, StringConstraints(max_length=20_000)]
Label = Annotated[str, StringConstraints(max_length=300)]
Category = Annotated[str, StringConstraints(max_length=500)]
Price = Annotated[
    Decimal,
    Field(
        ge=0,
        le=MAX_PRICE,
        decimal_places=2,
        allow_inf_nan=False,
        description='decimal string with at most 2 decimals, e.g. "199.99"',
        examples=["199.99"],
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Stock = Annotated[int, Field(ge=0, le=2_147_483_647)]
Attributes = Annotated[dict[Annotated[str, StringConstraints(max_length=100)], Label], Field()]


def price_to_minor(price: Decimal) -> int:
    return int(price * MINOR_PER_UNIT)


def minor_to_price(minor: int) -> str:
    return f"{Decimal(minor) / MINOR_PER_UNIT:.2f}"


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    description: Text = ""
    brand: Label = ""
    category: Category = Field("", examples=["Furniture/Chairs/Office Chairs"])
    price: Price
    currency: Currency = "USD"
    stock: Stock = 0
    attributes: Attributes = Field(default_factory=dict)
    status: Status = "active"

    def to_row(self) -> dict[str, Any]:
        row = self.model_dump(exclude={"price"})
        row["price_minor"] = price_to_minor(self.price)
        return row


class ProductPatch(BaseModel):
    """Partial update: only the fields sent change. null is not a value of any field."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku | None = None
    name: Name | None = None
    description: Text | None = None
    brand: Label | None = None
    category: Category | None = None
    price: Price | None = None
    currency: Currency | None = None
    stock: Stock | None = None
    attributes: Attributes | None = None
    status: Status | None = None

    def to_changes(self) -> dict[str, Any]:
        changes = self.model_dump(exclude_unset=True, exclude={"price"})
        if "price" in self.model_fields_set and self.price is not None:
            changes["price_minor"] = price_to_minor(self.price)
        return changes

    def null_fields(self) -> list[str]:
        return sorted(f for f in self.model_fields_set if getattr(self, f) is None)


class ProductOut(BaseModel):
    id: int
    sku: str
    name: str
    description: str
    brand: str
    category: str
    price: str = Field(examples=["199.99"])
    currency: str
    stock: int
    attributes: dict[str, str]
    status: Status
    version: int
    created_at: datetime
    updated_at: datetime
    primary_image: ImageOut | None = Field(
        None, description="the image with the lowest position, with its URLs; null if none"
    )

    @field_serializer("created_at", "updated_at")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()

    @classmethod
    def of(cls, product: Product, primary_image: dict[str, Any] | None = None) -> ProductOut:
        return cls(
            id=product.id,
            sku=product.sku,
            name=product.name,
            description=product.description,
            brand=product.brand,
            category=product.category,
            price=minor_to_price(product.price_minor),
            currency=product.currency.strip(),
            stock=product.stock,
            attributes=product.attributes,
            status=product.status,  # one of the CHECK constraint's values
            version=product.version,
            created_at=product.created_at,
            updated_at=product.updated_at,
            primary_image=None if primary_image is None else ImageOut.model_validate(primary_image),
        )


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )
