"""Search cache keys: one key per normalised request (search/cache.py, product_search.py)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from app.schemas.search import SearchResponse
from search.engine import SearchEngine
from search.product_search import ProductSearch, encode
from search.query import SearchParams

BASE = SearchParams(
    q="oak chair",
    category="Furniture",
    brands=("Acme", "Bolt"),
    min_price_minor=100,
    max_price_minor=5000,
    in_stock=True,
    attributes={"color": "red", "material": "oak"},
    sort="price_asc",
    limit=20,
    search_after=[1999, 7],
)


def _search(kind: str = "opensearch", index: str = "p-products") -> ProductSearch:
    return ProductSearch(SearchEngine(kind, client=None), index, cache=None)  # type: ignore[arg-type]


def test_the_same_search_written_differently_has_one_key() -> None:
    s = _search()
    key = s.search_key(BASE)
    assert s.search_key(dataclasses.replace(BASE, q="  oak chair ")) == key
    assert s.search_key(dataclasses.replace(BASE, brands=("Bolt", "Acme", "Bolt"))) == key
    flipped = {"material": "oak", "color": "red"}
    assert s.search_key(dataclasses.replace(BASE, attributes=flipped)) == key
    assert s.suggest_key(" oa ", 10) == s.suggest_key("oa", 10)
    assert s.suggest_key("oa", 25) == s.suggest_key("oa", 20)  # the engine gets 20 at most


CHANGES: list[dict[str, Any]] = [
    {"q": "oak desk"},
    {"q": ""},
    {"category": "Furniture/Chairs"},
    {"category": None},
    {"brands": ("Acme",)},
    {"min_price_minor": 101},
    {"max_price_minor": None},
    {"in_stock": False},
    {"in_stock": None},
    {"attributes": {"color": "blue", "material": "oak"}},
    {"attributes": {}},
    {"sort": "price_desc"},
    {"limit": 21},
    {"search_after": [1999, 8]},
    {"search_after": None},
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: next(iter(c)))
def test_every_parameter_that_changes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    s = _search()
    assert s.search_key(dataclasses.replace(BASE, **change)) != s.search_key(BASE)


def test_engine_index_and_kind_are_in_the_key() -> None:
    key = _search().search_key(BASE)
    assert _search(kind="elasticsearch").search_key(BASE) != key
    assert _search(index="other-products").search_key(BASE) != key
    assert _search().suggest_key("oa", 10) != _search().suggest_key("oa", 11)
    assert _search().suggest_key("oak chair", 20) != _search().search_key(
        SearchParams(q="oak chair")
    )


def test_encoded_answers_are_what_the_response_model_describes() -> None:
    answer = {
        "total": 1,
        "hits": [
            {
                "id": 1,
                "sku": "S-1",
                "name": "Café chair",
                "description": "",
                "brand": "Acme",
                "category": "Furniture",
                "price": "10.00",
                "currency": "USD",
                "stock": 1,
                "in_stock": True,
                "rating": 4.0,
                "attributes": {},
                "version": 3,
                "score": 1.5,
                "highlight": {"name": ["<em>Café</em> chair"]},
            }
        ],
        "facets": {"category": [], "brand": [], "price": []},
        "next_cursor": None,
    }
    body = encode(answer)
    assert "Café".encode() in body  # UTF-8, not escaped, as FastAPI renders
    assert json.loads(SearchResponse.model_validate_json(body).model_dump_json()) == answer
