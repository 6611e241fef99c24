"""Product payloads: what clients send and what the API returns (design.md payloads).

Prices travel as decimal strings ("199.99") and are stored in minor units (cents).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    MISSING,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_serializer,
)

from images.schemas import ImageOut
from kit.json_types import JSON_INTEGER, NOT_BLANK_TEXT_PATTERN, TEXT_PATTERN
from storage.money import format_minor, to_minor
from storage.products import Product

Status = Literal["active", "draft", "archived"]
# Not blank, so the schema says what stripping the surrounding whitespace leaves valid;
# no NUL anywhere (Postgres text).
Sku = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=NOT_BLANK_TEXT_PATTERN
    ),
]
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=300, pattern=NOT_BLANK_TEXT_PATTERN
    ),
]
Text = Annotated[str, StringConstraints(max_length=20_000, pattern=TEXT_PATTERN)]
Label = Annotated[str, StringConstraints(max_length=300, pattern=TEXT_PATTERN)]
Category = Annotated[str, StringConstraints(max_length=500, pattern=TEXT_PATTERN)]
# A decimal string only (design.md), described exactly by its pattern: at most 12
# digits keep price_minor well inside bigint; [0-9], not \d (other scripts' digits).
PRICE_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
Price = Annotated[
    str,
    StringConstraints(pattern=PRICE_PATTERN),
    Field(
        description='decimal string with at most 2 decimals, e.g. "199.99"',
        examples=["199.99"],
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]

Stock = Annotated[int, Field(ge=0, le=2_147_483_647), JSON_INTEGER]
AttributeName = Annotated[str, StringConstraints(max_length=100, pattern=TEXT_PATTERN)]
# Spelled out: for a key with a pattern pydantic writes `patternProperties`, which leaves
# keys outside the pattern (and their values) unconstrained.
Attributes = Annotated[
    dict[AttributeName, Label],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"maxLength": 100, "pattern": TEXT_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": 300, "pattern": TEXT_PATTERN},
            "description": "names and values are strings",
        }
    ),
]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    description: Text = ""
    brand: Label = ""
    category: Category = Field("", examples=["Furniture/Chairs/Office Chairs"])
    price: Price
    # not sent: the shop's first currency (settings.currencies), filled in by the route
    currency: Currency | MISSING = MISSING
    stock: Stock = 0
    attributes: Attributes = Field(default_factory=dict)
    status: Status = "active"

    def to_row(self, default_currency: str) -> dict[str, Any]:
        row = self.model_dump(exclude={"price"})
        row["price_minor"] = to_minor(self.price)
        row.setdefault("currency", default_currency)
        return row


def _at_least_one_field(schema: dict[str, Any]) -> None:
    schema["minProperties"] = 1  # an empty patch is a 422 ("no field to change")


class ProductPatch(BaseModel):
    """Partial update: only the fields sent change; null is not a value of any field."""

    # A field not sent is MISSING: no type of the schema, left out of model_dump. So a
    # null is refused by validation (422 naming the field) and the schema says no null.
    model_config = ConfigDict(extra="forbid", json_schema_extra=_at_least_one_field)

    sku: Sku | MISSING = MISSING
    name: Name | MISSING = MISSING
    description: Text | MISSING = MISSING
    brand: Label | MISSING = MISSING
    category: Category | MISSING = MISSING
    price: Price | MISSING = MISSING
    currency: Currency | MISSING = MISSING
    stock: Stock | MISSING = MISSING
    attributes: Attributes | MISSING = MISSING
    status: Status | MISSING = MISSING

    def to_changes(self) -> dict[str, Any]:
        changes = self.model_dump(exclude={"price"})
        if self.price is not MISSING:
            changes["price_minor"] = to_minor(self.price)
        return changes


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
            price=format_minor(product.price_minor),
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
