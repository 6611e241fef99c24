"""Response bodies of the search endpoints (documented in the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SearchHit(BaseModel):
    id: int
    sku: str
    name: str
    description: str
    brand: str
    category: str
    price: str = Field(description="decimal string, e.g. '199.99'")
    currency: str
    stock: int
    in_stock: bool
    rating: float | None
    attributes: dict[str, str]
    version: int | None = Field(description="the product row version this document reflects")
    score: float | None
    highlight: dict[str, list[str]] = Field(
        description="fragments of name/description with matches wrapped in <em>"
    )


class TermFacet(BaseModel):
    value: str
    count: int


class PriceFacet(BaseModel):
    key: str
    from_minor: int | None = Field(description="lower bound (inclusive), minor units")
    to_minor: int | None = Field(description="upper bound (exclusive), minor units")
    count: int


class Facets(BaseModel):
    category: list[TermFacet]
    brand: list[TermFacet]
    price: list[PriceFacet]


class SearchResponse(BaseModel):
    total: int = Field(description="number of products matching query and filters")
    hits: list[SearchHit]
    facets: Facets = Field(
        description="counts over the matching products: category with every filter applied;"
        " brand and price (multi-select) with every filter but their own, so the other"
        " brands and price ranges show how many products adding them would bring"
    )
    next_cursor: str | None = Field(
        description="pass as `cursor` (with the same q, filters and sort) for the next page"
    )


class Suggestion(BaseModel):
    id: int
    sku: str
    name: str


class SuggestResponse(BaseModel):
    suggestions: list[Suggestion]
