"""Run product searches and suggestions against the alias and shape the answers."""

from __future__ import annotations

from typing import Any

from search.engine import SearchEngine, SearchRequestError
from search.query import (
    SearchParams,
    encode_cursor,
    facets,
    price_ranges,
    search_body,
    suggest_body,
)
from storage.money import format_minor


def _empty_facets() -> dict[str, list[dict[str, Any]]]:
    return facets(
        {"price": {"values": {"buckets": [{**r, "doc_count": 0} for r in price_ranges()]}}}
    )


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    src = hit["_source"]
    return {
        "id": src["id"],
        "sku": src["sku"],
        "name": src["name"],
        "description": src.get("description", ""),
        "brand": src.get("brand", ""),
        "category": src.get("category", ""),
        "price": format_minor(int(src["price_minor"])),
        "currency": src.get("currency", "USD"),
        "stock": src.get("stock", 0),
        "in_stock": bool(src.get("in_stock")),
        "rating": src.get("rating"),
        "attributes": src.get("attributes", {}),
        "version": src.get("version"),
        "score": hit.get("_score"),
        "highlight": hit.get("highlight", {}),
    }


async def search_products(engine: SearchEngine, index: str, params: SearchParams) -> dict[str, Any]:
    try:
        response = await engine.search(index, search_body(params))
    except SearchRequestError as exc:
        if exc.status == 404:  # no index yet: nothing has been indexed
            return {"total": 0, "hits": [], "facets": _empty_facets(), "next_cursor": None}
        raise
    raw_hits = response["hits"]["hits"]
    next_cursor = None
    if len(raw_hits) == params.limit and raw_hits:
        next_cursor = encode_cursor(params.sort, raw_hits[-1]["sort"])
    return {
        "total": response["hits"]["total"]["value"],
        "hits": [_hit(h) for h in raw_hits],
        "facets": facets(response.get("aggregations", {})),
        "next_cursor": next_cursor,
    }


async def suggest(
    engine: SearchEngine, index: str, prefix: str, limit: int
) -> list[dict[str, Any]]:
    try:
        response = await engine.search(index, suggest_body(prefix, limit))
    except SearchRequestError as exc:
        if exc.status == 404:
            return []
        raise
    return [
        {"id": h["_source"]["id"], "sku": h["_source"]["sku"], "name": h["_source"]["name"]}
        for h in response["hits"]["hits"]
    ]
