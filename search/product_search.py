"""Run product searches and suggestions against the alias and shape the answers.

`ProductSearch` is the one search service of a process: the API routes and the
storefront pages call it, and it answers from the search cache (search/cache.py) when it
can. Its answers are the JSON bytes the API sends (`*_json`), the same on a hit and a
miss; the pages decode them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from search.cache import SearchCache, request_key
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
        "rating": None if src.get("rating") is None else float(src["rating"]),
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


def encode(answer: Any) -> bytes:
    """JSON as the API sends it (compact, UTF-8: what FastAPI's JSONResponse renders)."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def normalized(params: SearchParams) -> SearchParams:
    """The same search, written one way: brands are a set (a `terms` filter)."""
    return dataclasses.replace(params, brands=tuple(sorted(set(params.brands))))


class ProductSearch:
    """Searches and suggestions on one alias, through the cache (`cache` None or with a
    TTL of 0: straight to the engine)."""

    def __init__(self, engine: SearchEngine, index: str, cache: SearchCache | None) -> None:
        self.engine = engine
        self.index = index
        self.cache = cache

    @property
    def caching(self) -> bool:
        """Whether answers go through the cache (off: no cache, or a TTL of 0)."""
        return self.cache is not None and self.cache.enabled

    def search_key(self, params: SearchParams) -> str:
        params = normalized(params)
        body = search_body(params)
        return request_key(
            "products", self.engine.kind, self.index, body, sort=params.sort, limit=params.limit
        )

    def suggest_key(self, prefix: str, limit: int) -> str:
        return request_key("suggest", self.engine.kind, self.index, suggest_body(prefix, limit))

    async def search_json(self, params: SearchParams, *, key: str | None = None) -> bytes:
        """The body of `GET /search/products` for these parameters (`key`: their
        `search_key`, when the caller has it already)."""
        params = normalized(params)

        async def load() -> bytes:
            return encode(await search_products(self.engine, self.index, params))

        if self.cache is None or not self.cache.enabled:
            return await load()
        return await self.cache.get_or_load("products", key or self.search_key(params), load)

    async def search(self, params: SearchParams) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(await self.search_json(params))
        return answer

    async def suggest_json(self, prefix: str, limit: int, *, key: str | None = None) -> bytes:
        """The body of `GET /search/suggest`: `{"suggestions": [...]}` (`key`: the
        `suggest_key`, when the caller has it already)."""

        async def load() -> bytes:
            return encode({"suggestions": await suggest(self.engine, self.index, prefix, limit)})

        if self.cache is None or not self.cache.enabled:
            return await load()
        digest = key or self.suggest_key(prefix, limit)
        return await self.cache.get_or_load("suggest", digest, load)

    async def suggest(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(await self.suggest_json(prefix, limit))[
            "suggestions"
        ]
        return found
