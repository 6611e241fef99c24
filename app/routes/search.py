"""Public product search and autocomplete, answered by the search engine through the
search cache (`stores.product_search`, search/cache.py): the same bytes and headers on a
hit as on a miss. Each query string answered here is remembered with its cache digest
(`stores.search_request_keys`), so the thin routes (app/routes/search_read.py) answer
its next hits without this module.

Engine down -> 503 with Retry-After (StoreUnavailable), unless the cache holds the
answer; writes do not depend on it.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from app.deps import StoresDep
from app.schemas.search import SearchResponse, SuggestResponse
from search.query import (
    MAX_LIMIT,
    SUGGEST_MAX,
    SearchParams,
    SortName,
    decode_cursor,
)
from storage.cursor import InvalidCursor
from storage.money import to_minor

router = APIRouter(prefix="/search", tags=["search"])

ATTR_PREFIX = "attr."
ATTR_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ATTR_FILTERS = 10

_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The search engine is unavailable; retry after Retry-After"}
}


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


def _minor(value: Decimal | None) -> int | None:
    return None if value is None else to_minor(value)


def _attribute_filters(request: Request) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if not key.startswith(ATTR_PREFIX):
            continue
        name = key[len(ATTR_PREFIX) :]
        if not ATTR_NAME.match(name):
            raise _invalid(key, "attribute names are 1-64 letters, digits, '_' or '-'")
        if not value or len(value) > 256:
            raise _invalid(key, "attribute value must be 1-256 characters")
        if name in attrs:
            raise _invalid(key, "give each attribute once")
        attrs[name] = value
    if len(attrs) > MAX_ATTR_FILTERS:
        raise _invalid("attr", f"at most {MAX_ATTR_FILTERS} attribute filters")
    return attrs


@router.get(
    "/products",
    response_model=SearchResponse,
    summary="Search products: text, filters, facets, sort, cursor pagination",
    description=(
        "`q` searches name, brand, category, description and attributes (typo tolerant; "
        "an exact or partial SKU also matches); empty `q` browses. Attribute filters are "
        "`attr.<name>=<value>` (e.g. `attr.color=red`). `brand` (repeatable) and the "
        "price range are multi-select facets: the brand facet is counted without the "
        "brand filter and the price facet without the price range, so they list what "
        "else could be added. Pass `next_cursor` back as `cursor` with the same query "
        "for the next page."
    ),
    responses=_UNAVAILABLE,
)
async def search_products_route(
    request: Request,
    stores: StoresDep,
    q: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[
        str | None, Query(max_length=300, description="category path; includes sub-categories")
    ] = None,
    brand: Annotated[list[str] | None, Query(max_length=20)] = None,
    min_price: Annotated[Decimal | None, Query(ge=0, le=10**9, decimal_places=2)] = None,
    max_price: Annotated[Decimal | None, Query(ge=0, le=10**9, decimal_places=2)] = None,
    in_stock: bool | None = None,
    sort: SortName = "relevance",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    if min_price is not None and max_price is not None and min_price > max_price:
        raise _invalid("min_price", "min_price must not exceed max_price")
    search_after = None
    if cursor:
        try:
            search_after = decode_cursor(cursor, sort)
        except InvalidCursor as exc:
            raise _invalid("cursor", str(exc)) from exc
    params = SearchParams(
        q=q,
        category=category or None,
        brands=tuple(b for b in brand or () if b),
        min_price_minor=_minor(min_price),
        max_price_minor=_minor(max_price),
        in_stock=in_stock,
        attributes=_attribute_filters(request),
        sort=sort,
        limit=limit,
        search_after=search_after,
    )
    searcher = stores.product_search
    if not searcher.caching:  # nothing to remember: no thin route can answer it
        return _json(await searcher.search_json(params))
    key = searcher.search_key(params)
    body = await searcher.search_json(params, key=key)
    stores.search_request_keys.remember("products", request.scope["query_string"], key)
    return _json(body)


@router.get(
    "/suggest",
    response_model=SuggestResponse,
    summary="Autocomplete: products whose name words start with what was typed",
    responses=_UNAVAILABLE,
)
async def suggest_route(
    request: Request,
    stores: StoresDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=SUGGEST_MAX)] = 10,
) -> Response:
    if not q.strip():
        raise _invalid("q", "q must contain a character other than whitespace")
    searcher = stores.product_search
    if not searcher.caching:
        return _json(await searcher.suggest_json(q, limit))
    key = searcher.suggest_key(q, limit)
    body = await searcher.suggest_json(q, limit, key=key)
    stores.search_request_keys.remember("suggest", request.scope["query_string"], key)
    return _json(body)


def _json(body: bytes) -> Response:
    # the answer's bytes as they are (cached or not): `response_model` documents them
    return Response(body, media_type="application/json")
