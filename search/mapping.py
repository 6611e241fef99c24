"""The product index: analyzers, mapping and the document built from a Postgres row.

One mapping for both engines: only types that Elasticsearch 8/9 and OpenSearch 2 share
(attributes are an `object` with a dynamic keyword template rather than ES `flattened`
or OpenSearch `flat_object`, which differ). Synonyms are inlined from `synonyms.txt`
at index creation so nothing has to be shipped into the engine's config directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

# Bump when the mapping or analyzers change: index names carry it (`...-v<N>-<ts>`).
MAPPING_VERSION = 1

SYNONYMS_FILE = Path(__file__).with_name("synonyms.txt")

# Products a shopper can find: live (not soft-deleted) and active.
SEARCHABLE_STATUS = "active"


def load_synonyms(path: Path = SYNONYMS_FILE) -> list[str]:
    """Solr-format rules, one per line; blank lines and `#` comments skipped."""
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rule = line.split("#", 1)[0].strip()
        if rule:
            rules.append(rule)
    return rules


def index_settings(
    *, synonyms: list[str] | None = None, shards: int = 1, replicas: int = 0
) -> dict[str, Any]:
    rules = load_synonyms() if synonyms is None else synonyms
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "analysis": {
            "filter": {
                "english_light": {"type": "stemmer", "language": "light_english"},
                "english_possessive": {"type": "stemmer", "language": "possessive_english"},
                # lenient: a bad rule in the editable file is skipped, not fatal
                "product_synonyms": {"type": "synonym_graph", "synonyms": rules, "lenient": True},
                "autocomplete_ngram": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20},
            },
            "normalizer": {
                "lowercase_ascii": {"type": "custom", "filter": ["lowercase", "asciifolding"]}
            },
            "tokenizer": {"category_path": {"type": "path_hierarchy", "delimiter": "/"}},
            "analyzer": {
                "product_text": {
                    "tokenizer": "standard",
                    "filter": ["english_possessive", "lowercase", "asciifolding", "english_light"],
                },
                # synonym_graph belongs at search time only (graph token streams)
                "product_text_search": {
                    "tokenizer": "standard",
                    "filter": [
                        "english_possessive",
                        "lowercase",
                        "asciifolding",
                        "product_synonyms",
                        "english_light",
                    ],
                },
                "autocomplete": {
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding", "autocomplete_ngram"],
                },
                "autocomplete_search": {
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding"],
                },
                "category_path": {"tokenizer": "category_path"},
            },
        },
    }


def _text(boost_subfields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    field: dict[str, Any] = {
        "type": "text",
        "analyzer": "product_text",
        "search_analyzer": "product_text_search",
    }
    if boost_subfields:
        field["fields"] = dict(boost_subfields)
    return field


def index_mappings() -> dict[str, Any]:
    return {
        "dynamic": "strict",
        "dynamic_templates": [
            {
                "attributes_as_keywords": {
                    "path_match": "attributes.*",
                    "mapping": {
                        "type": "keyword",
                        "ignore_above": 256,
                        "copy_to": "attributes_text",
                    },
                }
            }
        ],
        "properties": {
            "id": {"type": "long"},
            "sku": {"type": "keyword", "normalizer": "lowercase_ascii"},
            "name": _text(
                {
                    "autocomplete": {
                        "type": "text",
                        "analyzer": "autocomplete",
                        "search_analyzer": "autocomplete_search",
                    },
                    "raw": {"type": "keyword", "ignore_above": 300},
                }
            ),
            "description": _text(),
            "brand": {
                "type": "keyword",
                "fields": {
                    "text": {
                        "type": "text",
                        "analyzer": "product_text",
                        "search_analyzer": "product_text_search",
                    }
                },
            },
            "category": {
                "type": "keyword",
                "fields": {
                    "text": {
                        "type": "text",
                        "analyzer": "product_text",
                        "search_analyzer": "product_text_search",
                    }
                },
            },
            # "Furniture/Chairs/Office" is indexed as Furniture, Furniture/Chairs, ...:
            # a term filter on any ancestor path finds every product below it.
            "category_path": {
                "type": "text",
                "analyzer": "category_path",
                "search_analyzer": "keyword",
            },
            "price_minor": {"type": "long"},
            "currency": {"type": "keyword"},
            "stock": {"type": "integer"},
            "in_stock": {"type": "boolean"},
            "rating": {"type": "float"},
            "attributes": {"type": "object", "dynamic": True},
            "attributes_text": _text(),
            "version": {"type": "long"},
            "created_at": {"type": "date"},
            "updated_at": {"type": "date"},
        },
    }


def is_searchable(row: Mapping[str, Any]) -> bool:
    return row.get("deleted_at") is None and row.get("status") == SEARCHABLE_STATUS


def document(row: Mapping[str, Any]) -> dict[str, Any]:
    """The indexed document of a products row (as read by `search.sync.ROW_COLUMNS`)."""
    rating = row.get("rating")
    attributes = row.get("attributes") or {}
    category = row.get("category") or ""
    return {
        "id": row["id"],
        "sku": row["sku"],
        "name": row["name"],
        "description": row.get("description") or "",
        "brand": row.get("brand") or "",
        "category": category,
        "category_path": category,
        "price_minor": row["price_minor"],
        "currency": row.get("currency") or "USD",
        "stock": row.get("stock") or 0,
        "in_stock": (row.get("stock") or 0) > 0,
        "rating": float(rating) if isinstance(rating, Decimal | int | float) else None,
        "attributes": {str(k): str(v) for k, v in attributes.items()},
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
