"""The product index: analyzers, mapping and the document built from a Postgres row.

One mapping for both engines: only types that Elasticsearch 8/9 and OpenSearch 2 share
(attributes are an `object` with a dynamic keyword template rather than ES `flattened`
or OpenSearch `flat_object`, which differ). Synonyms are inlined from `synonyms.txt`
at index creation so nothing has to be shipped into the engine's config directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

# Bump when the mapping or analyzers change: index names carry it (`...-v<N>-<ts>`).
MAPPING_VERSION = 3

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


def with_closed_compounds(rules: Iterable[str]) -> list[str]:
    """Each rule with the glued form of its multi-word terms added ("t shirt, tee" ->
    "t shirt, tee, tshirt"): a synonym reaches a shopper who types the compound closed,
    as the ranking's compound handling does for any other word pair. For `a => b` only
    the left side grows."""
    out = []
    for rule in rules:
        left, arrow, right = rule.partition("=>")
        terms = [t.strip() for t in left.split(",") if t.strip()]
        known = set(terms) | {t.strip() for t in right.split(",")}
        for term in list(terms):
            glued = term.replace(" ", "")
            if " " in term and glued not in known:
                terms.append(glued)
                known.add(glued)
        out.append(", ".join(terms) + (f" => {right.strip()}" if arrow else ""))
    return out


# Units, as pattern_replace char filters run before tokenising (index and query alike):
# a number followed by any spelling of a unit becomes "<number> <canonical unit>", so
# '60"', "60in", "60 in.", "60-inch" and "60 inches" all index as the tokens 60, inch.
# Only after a digit: "in" elsewhere stays a word. Java regex syntax (both engines).
_AFTER_NUMBER = r"(?i)(?<=\d)\s*-?\s*"
# unit -> (its words and abbreviations, which must end a word; its symbols, which need
# not: 27"W x 30"H)
UNIT_SPELLINGS: dict[str, tuple[str, str]] = {
    "inch": (r"inches|inch|in\.|in", r'"|\'\'|\u201d|\u2033'),
    "foot": (r"feet|foot|ft\.|ft", r"'(?!s)|\u2019(?!s)|\u2032"),
    "quart": (r"quarts|quart|qts|qt\.|qt", ""),
    "gallon": (r"gallons|gallon|gal\.|gal", ""),
    "ounce": (r"(?:fl\.?\s*)?(?:ounces|ounce|oz\.|oz)", ""),
    "pound": (r"pounds|pound|lbs\.|lbs|lb\.|lb", ""),
    "liter": (r"liters|liter|litres|litre|l", ""),
    "ml": (r"milliliters|milliliter|millilitres|millilitre|ml", ""),
    "mm": (r"millimeters|millimeter|millimetres|millimetre|mm", ""),
    "cm": (r"centimeters|centimeter|centimetres|centimetre|cm", ""),
    "watt": (r"watts|watt|w", ""),
    "volt": (r"volts|volt|v", ""),
    "pack": (r"packs|pack|pk|count|ct", ""),
}


def _unit_pattern(words: str, symbols: str) -> str:
    spelled = f"(?:{words})(?![a-z0-9])"
    return _AFTER_NUMBER + (f"(?:{spelled}|{symbols})" if symbols else spelled)


def _char_filters() -> dict[str, dict[str, Any]]:
    filters: dict[str, dict[str, Any]] = {
        # vulgar fractions and "1/2" become one token "1_2" (the standard tokenizer
        # keeps digits joined by "_"), so "1/2 in." does not match every "2"
        "unicode_fractions": {
            "type": "mapping",
            "mappings": ["½ => \\u00201_2", "¼ => \\u00201_4", "¾ => \\u00203_4"],
        },
        "fractions": {
            "type": "pattern_replace",
            "pattern": r"(\d+)\s*/\s*(\d+)",
            "replacement": "$1_$2",
        },
        # dimensions: "2x4", "2 x 4", "5' x 8'" -> "2 x 4" (numbers as tokens of their own)
        "dimensions": {
            "type": "pattern_replace",
            "pattern": r"(?i)(?<=\d)(\s*(?:\"|'|in\.?|ft\.?|inch|inches|feet|foot|cm|mm))?"
            r"\s*[x\u00d7*]\s*(?=\d)",
            "replacement": "$1 x ",
        },
    }
    for unit, (words, symbols) in UNIT_SPELLINGS.items():
        filters[f"unit_{unit}"] = {
            "type": "pattern_replace",
            "pattern": _unit_pattern(words, symbols),
            "replacement": f" {unit} ",
        }
    return filters


CHAR_FILTERS = [
    "unicode_fractions",
    "fractions",
    "dimensions",
    *(f"unit_{u}" for u in UNIT_SPELLINGS),
]


def index_settings(
    *, synonyms: list[str] | None = None, shards: int = 1, replicas: int = 0
) -> dict[str, Any]:
    rules = with_closed_compounds(load_synonyms() if synonyms is None else synonyms)
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "analysis": {
            "char_filter": _char_filters(),
            "filter": {
                "english_light": {"type": "stemmer", "language": "light_english"},
                "english_possessive": {"type": "stemmer", "language": "possessive_english"},
                # lenient: a bad rule in the editable file is skipped, not fatal
                "product_synonyms": {"type": "synonym_graph", "synonyms": rules, "lenient": True},
                "english_stop": {"type": "stop", "stopwords": "_english_"},
                # "t shirt", "t-shirt" -> also "tshirt": compounds meet their split forms
                "joined_pairs": {
                    "type": "shingle",
                    "min_shingle_size": 2,
                    "max_shingle_size": 2,
                    "token_separator": "",
                    "output_unigrams": True,
                },
                "autocomplete_ngram": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20},
            },
            "normalizer": {
                "lowercase_ascii": {"type": "custom", "filter": ["lowercase", "asciifolding"]}
            },
            "tokenizer": {"category_path": {"type": "path_hierarchy", "delimiter": "/"}},
            "analyzer": {
                "product_text": {
                    "char_filter": CHAR_FILTERS,
                    "tokenizer": "standard",
                    "filter": [
                        "english_possessive",
                        "lowercase",
                        "asciifolding",
                        "english_stop",
                        "english_light",
                    ],
                },
                # synonym_graph belongs at search time only (graph token streams)
                "product_text_search": {
                    "char_filter": CHAR_FILTERS,
                    "tokenizer": "standard",
                    "filter": [
                        "english_possessive",
                        "lowercase",
                        "asciifolding",
                        "product_synonyms",
                        "english_stop",
                        "english_light",
                    ],
                },
                # index side only: the query side sends the joined pairs itself
                # (search.query.joined_pairs), a bounded number of terms
                "product_joined": {
                    "char_filter": CHAR_FILTERS,
                    "tokenizer": "standard",
                    "filter": [
                        "english_possessive",
                        "lowercase",
                        "asciifolding",
                        "joined_pairs",
                        "english_light",
                    ],
                },
                "product_joined_search": {
                    "char_filter": CHAR_FILTERS,
                    "tokenizer": "standard",
                    "filter": ["english_possessive", "lowercase", "asciifolding", "english_light"],
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
                    # the whole name, case and accents aside: an exact-name match
                    "exact": {
                        "type": "keyword",
                        "normalizer": "lowercase_ascii",
                        "ignore_above": 300,
                    },
                    "joined": {
                        "type": "text",
                        "analyzer": "product_joined",
                        "search_analyzer": "product_joined_search",
                    },
                }
            ),
            # model numbers and the SKU, separators removed ("SD-500" -> "sd500")
            "codes": {"type": "keyword"},
            # the product type: the last category segment ("Office Chairs"), and its
            # head noun, the last word ("chairs"): "grill brush" is a brush
            "product_type": _text(),
            "type_head": _text(),
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
            # units ordered (not cancelled): a gentle popularity boost
            "popularity": {"type": "integer"},
            "attributes": {"type": "object", "dynamic": True},
            "attributes_text": _text(),
            "version": {"type": "long"},
            "created_at": {"type": "date"},
            "updated_at": {"type": "date"},
        },
    }


def is_searchable(row: Mapping[str, Any]) -> bool:
    return row.get("deleted_at") is None and row.get("status") == SEARCHABLE_STATUS


# A model number: letters and digits together ("K420", "SD-500", "WH-1000XM4"), not a
# plain quantity ("27in", "2x4", "65W").
_CODE_TOKEN = re.compile(r"[^\s,;()\[\]]+")
_QUANTITY = re.compile(r"^\d+(?:[._]\d+)?(?:x\d+(?:[._]\d+)?)*[a-z]{0,6}$")


def normalise_code(token: str) -> str:
    return re.sub(r"[^0-9a-z]", "", token.lower())


def is_code(code: str) -> bool:
    return (
        len(code) >= 3
        and any(c.isdigit() for c in code)
        and any(c.isalpha() for c in code)
        and not _QUANTITY.match(code)
    )


def codes_in(texts: Iterable[str]) -> list[str]:
    found: list[str] = []
    for text in texts:
        for token in _CODE_TOKEN.findall(text):
            code = normalise_code(token)
            if is_code(code) and code not in found:
                found.append(code)
    return found


def type_heads(product_type: str) -> list[str]:
    """The head noun of the product type, and the last two words glued: "Book Cases"
    is "Cases" and "BookCases", so a shopper's closed compound ("bookcase") finds the
    type too (the query side glues split words: search.query.compound_forms)."""
    words = product_type.split()
    heads = words[-1:]
    if len(words) >= 2 and words[-2].isalpha() and words[-1].isalpha():
        heads.append(words[-2] + words[-1])
    return heads


def document(row: Mapping[str, Any]) -> dict[str, Any]:
    """The indexed document of a products row (as read by `search.sync.ROW_COLUMNS`)."""
    rating = row.get("rating")
    attributes = row.get("attributes") or {}
    category = row.get("category") or ""
    product_type = category.rsplit("/", 1)[-1]
    codes = codes_in([row["name"], *(str(v) for v in attributes.values())])
    sku = normalise_code(row["sku"])
    if sku and sku not in codes:
        codes.append(sku)
    return {
        "id": row["id"],
        "sku": row["sku"],
        "name": row["name"],
        "description": row.get("description") or "",
        "brand": row.get("brand") or "",
        "category": category,
        "category_path": category,
        "product_type": product_type,
        "type_head": type_heads(product_type),
        "codes": codes,
        "price_minor": row["price_minor"],
        "currency": row.get("currency") or "USD",
        "stock": row.get("stock") or 0,
        "in_stock": (row.get("stock") or 0) > 0,
        "rating": float(rating) if isinstance(rating, Decimal | int | float) else None,
        "popularity": int(row.get("popularity") or 0),
        "attributes": {str(k): str(v) for k, v in attributes.items()},
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
