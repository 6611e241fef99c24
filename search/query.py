"""The one query DSL builder: pure functions from validated parameters to engine JSON.

User text only ever goes into `multi_match`/`match_phrase`/`term`/`prefix` queries,
which do not interpret operators, never into `query_string`. Deep pagination uses
`search_after` with an opaque cursor (base64url of JSON: the sort name and the last
hit's sort values).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from search.mapping import codes_in
from storage import cursor as cursors

SortName = Literal["relevance", "price_asc", "price_desc", "newest", "rating"]
SORTS: tuple[SortName, ...] = ("relevance", "price_asc", "price_desc", "newest", "rating")

MAX_LIMIT = 100
FACET_SIZE = 20
SUGGEST_MAX = 20

# Price facet buckets, in minor units (cents): under 25, 25-50, 50-100, ... 1000+.
PRICE_BUCKET_EDGES_MINOR: tuple[int, ...] = (2_500, 5_000, 10_000, 25_000, 50_000, 100_000)

# Field weights of the free-text query: a name match beats a brand or category match,
# which beat a mention in the description or attributes.
TEXT_FIELDS = (
    "name^4",
    "brand.text^2",
    "category.text^1.5",
    "description",
    "attributes_text",
)
# every query word somewhere in the product (cross-field), e.g. "black office chair"
# name.joined (its own analyzer group, so an alternative, not a sum): "bookcase" finds
# a catalog's "Book Case" through its indexed pair
CROSS_FIELDS = (
    "name^3",
    "name.joined^3",
    "brand.text^2",
    "category.text^2",
    "attributes_text^1.5",
    "description",
)
FUZZY_FIELDS = ("name^4", "brand.text^2", "category.text^1.5")

_SORT_CLAUSES: dict[SortName, list[dict[str, Any]]] = {
    "relevance": [{"_score": "desc"}, {"id": "asc"}],
    "price_asc": [{"price_minor": "asc"}, {"id": "asc"}],
    "price_desc": [{"price_minor": "desc"}, {"id": "asc"}],
    "newest": [{"created_at": "desc"}, {"id": "desc"}],
    "rating": [{"rating": {"order": "desc", "missing": "_last"}}, {"id": "asc"}],
}


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    category: str | None = None
    brands: tuple[str, ...] = ()
    min_price_minor: int | None = None
    max_price_minor: int | None = None
    in_stock: bool | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    sort: SortName = "relevance"
    limit: int = 20
    search_after: Sequence[Any] | None = None


def encode_cursor(sort: SortName, sort_values: Sequence[Any]) -> str:
    return cursors.encode_cursor(sort, sort_values)


def decode_cursor(cursor: str, sort: SortName) -> list[Any]:
    """The search_after values of `cursor`; InvalidCursor if it is garbage or was made
    for another sort order."""
    return cursors.decode_cursor(cursor, sort, len(_SORT_CLAUSES[sort]))


def price_ranges() -> list[dict[str, Any]]:
    edges = PRICE_BUCKET_EDGES_MINOR
    ranges: list[dict[str, Any]] = [{"key": f"*-{edges[0]}", "to": edges[0]}]
    for low, high in itertools.pairwise(edges):
        ranges.append({"key": f"{low}-{high}", "from": low, "to": high})
    ranges.append({"key": f"{edges[-1]}-*", "from": edges[-1]})
    return ranges


@dataclass(frozen=True)
class Filters:
    """The filter clauses by role. `shared` (category, stock, attributes) narrow the
    hits and every facet; `brand` and `price` are multi-select facets: they narrow the
    hits (a post_filter) and the other facets, but not their own facet, so a shopper who
    picked a brand still sees the counts of the others to add."""

    shared: list[dict[str, Any]]
    brand: list[dict[str, Any]]
    price: list[dict[str, Any]]


def filters_of(params: SearchParams) -> Filters:
    shared: list[dict[str, Any]] = []
    if params.category:
        # category_path holds every ancestor path: a parent category finds its children
        shared.append({"term": {"category_path": params.category}})
    if params.in_stock is not None:
        shared.append({"term": {"in_stock": params.in_stock}})
    for name, value in sorted(params.attributes.items()):
        shared.append({"term": {f"attributes.{name}": value}})
    brand = [{"terms": {"brand": list(params.brands)}}] if params.brands else []
    price: list[dict[str, Any]] = []
    if params.min_price_minor is not None or params.max_price_minor is not None:
        bounds: dict[str, int] = {}
        if params.min_price_minor is not None:
            bounds["gte"] = params.min_price_minor
        if params.max_price_minor is not None:
            bounds["lte"] = params.max_price_minor
        price.append({"range": {"price_minor": bounds}})
    return Filters(shared, brand, price)


def _all_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"filter": clauses}}  # no clauses: matches everything


def _facet(clauses: list[dict[str, Any]], agg: dict[str, Any]) -> dict[str, Any]:
    """An aggregation over the documents that also match `clauses` (facets() reads it)."""
    return {"filter": _all_of(clauses), "aggs": {"values": agg}}


_WORD = re.compile(r"[^\W_]+")
MAX_JOINED_WORDS = 8  # longer queries: no compound pairs (bounded query size)


def joined_pairs(q: str) -> list[str]:
    """Adjacent words glued together ("t shirt" -> "tshirt", "book case" ->
    "bookcase"), matched against the name's indexed pairs: compounds meet their split
    and hyphenated forms in both directions."""
    words = _WORD.findall(q.lower())
    if len(words) > MAX_JOINED_WORDS:
        return []
    return [a + b for a, b in itertools.pairwise(words)]


def joined_terms(q: str) -> list[str]:
    """What the query sends to `name.joined`: its words (so "tshirt" meets the indexed
    pair of "T-Shirt") and its joined pairs (so "t shirt" meets "Tshirt")."""
    words = _WORD.findall(q.lower())
    return [*words, *joined_pairs(q)] if len(words) <= MAX_JOINED_WORDS else []


def _is_prefix(word: str) -> bool:
    """A model number's letter prefix typed apart: "sd" of "sd 500"."""
    return word.isalpha() and len(word) <= 4


def query_codes(q: str) -> list[str]:
    """Model-number candidates of the query, separators removed: each token, and each
    letters+digits pair typed apart ("sd 500" -> "sd500")."""
    tokens = q.split()
    split = [a + b for a, b in itertools.pairwise(tokens) if _is_prefix(a) and b[:1].isdigit()]
    candidates = [*tokens, *split]
    return codes_in(candidates)


def compound_forms(q: str) -> list[str]:
    """The query, then the query with one adjacent pair of words glued ("arm chair" ->
    "armchair", "dish washer soap" -> "dishwasher soap", "dish washersoap"): a split
    compound meets the catalog's closed form in the strong clauses too, without a word
    list. Words with digits are left alone (sizes and model numbers have their own
    normalisation); at most MAX_JOINED_WORDS words, so the query stays bounded."""
    words = _WORD.findall(q.lower())
    forms = [q]
    if len(words) > MAX_JOINED_WORDS:
        return forms
    for i, (a, b) in enumerate(itertools.pairwise(words)):
        if a.isalpha() and b.isalpha():
            forms.append(" ".join([*words[:i], a + b, *words[i + 2 :]]))
    return forms


def _head_word(q: str) -> str | None:
    """The head noun of an English noun phrase is its last word ("grill brush" is a
    brush); numbers, sizes and model numbers after it are skipped."""
    for word in reversed(_WORD.findall(q.lower())):
        if len(word) > 2 and not any(c.isdigit() for c in word):
            return str(word)
    return None


def _best_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """The best-scoring clause counts (one form of the query, never their sum)."""
    return clauses[0] if len(clauses) == 1 else {"dis_max": {"queries": clauses}}


def _strong_clauses(form: str) -> list[dict[str, Any]]:
    """The clauses that say "this is the product asked for": the name phrase, every word
    present across fields, and the product type."""
    clauses: list[dict[str, Any]] = [
        {"match_phrase": {"name": {"query": form, "boost": 3, "slop": 1}}},
        {
            "multi_match": {
                "query": form,
                "type": "cross_fields",
                "operator": "and",
                "fields": list(CROSS_FIELDS),
                "boost": 2,
            }
        },
    ]
    head = _head_word(form)
    if head:
        clauses.append({"match": {"type_head": {"query": head, "boost": 2}}})
    return clauses


def text_query(q: str) -> dict[str, Any]:
    """Free text. The recall set is any clause; the ranking adds up, strongest first:
    SKU and model numbers, the exact name, the phrase, every word present (across
    fields), the product type; plain best-field match with field boosts; compound
    pairs; and, weakest, a fuzzy match, so a typo never outranks an exact match."""
    sku = q.strip().lower()
    # each strong clause once, scored on the query's best form (as typed, or with a
    # split compound glued): "arm chair" finds an Armchair as strongly as "armchair"
    by_form = [_strong_clauses(form) for form in compound_forms(q)]
    strong = [
        _best_of([clauses[i] for clauses in by_form if i < len(clauses)])
        for i in range(max(len(clauses) for clauses in by_form))
    ]
    should: list[dict[str, Any]] = [
        {
            "multi_match": {
                "query": q,
                "type": "best_fields",
                "fields": list(TEXT_FIELDS),
                "tie_breaker": 0.3,
            }
        },
        *strong,
        {"term": {"sku": {"value": sku, "boost": 20}}},
        {"prefix": {"sku": {"value": sku, "boost": 5}}},
        {"term": {"name.exact": {"value": sku, "boost": 10}}},
        {
            "multi_match": {
                "query": q,
                "type": "best_fields",
                "fields": list(FUZZY_FIELDS),
                "fuzziness": "AUTO",
                "prefix_length": 1,
                "max_expansions": 20,
                "boost": 0.3,
            }
        },
    ]
    joined = joined_terms(q)
    if joined:
        should.append({"match": {"name.joined": {"query": " ".join(joined), "boost": 4}}})
    codes = query_codes(q)
    if codes:
        should.append({"terms": {"codes": codes, "boost": 10}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


# Business signals, a gentle multiplier (1.0 to about 1.2): in stock, and units ordered
# on a log scale. No scripts: function_score field_value_factor and filter weights.
def _business(query: dict[str, Any]) -> dict[str, Any]:
    return {
        "function_score": {
            "query": query,
            "functions": [
                {"weight": 1},
                {"filter": {"term": {"in_stock": True}}, "weight": 0.05},
                {
                    "field_value_factor": {
                        "field": "popularity",
                        "modifier": "log1p",
                        "missing": 0,
                    },
                    "weight": 0.04,
                },
            ],
            "score_mode": "sum",
            "boost_mode": "multiply",
        }
    }


def search_body(params: SearchParams) -> dict[str, Any]:
    q = params.q.strip()
    f = filters_of(params)
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "must": [_business(text_query(q)) if q else {"match_all": {}}],
                "filter": f.shared,
            }
        },
        "sort": _SORT_CLAUSES[params.sort],
        "size": params.limit,
        "track_total_hits": True,
        "_source": {"excludes": ["category_path", "attributes_text"]},
        # each facet counts with every filter but its own (category drills down: all)
        "aggs": {
            "category": _facet(
                f.brand + f.price, {"terms": {"field": "category", "size": FACET_SIZE}}
            ),
            "brand": _facet(f.price, {"terms": {"field": "brand", "size": FACET_SIZE}}),
            "price": _facet(f.brand, {"range": {"field": "price_minor", "ranges": price_ranges()}}),
        },
    }
    if f.brand or f.price:  # hits and total: every filter
        body["post_filter"] = _all_of(f.brand + f.price)
    if params.sort == "relevance":
        # sorting on _score plus a tie-breaker: scores must still be computed
        body["track_scores"] = True
    if params.search_after is not None:
        body["search_after"] = list(params.search_after)
    if q:
        body["highlight"] = {
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {"name": {"number_of_fragments": 0}, "description": {}},
            "highlight_query": highlight_query(q),
        }
    return body


def highlight_query(q: str) -> dict[str, Any]:
    """What to mark in the hits: the shopper's words on the highlighted fields (their
    search analyzers, so synonyms and units still apply; a typo is not marked). Without
    it the engine highlights with the whole ranking query, which Elasticsearch 9's
    unified highlighter runs per hit and field through Lucene's Matches API: 295 vs
    131 ms p50 per search at 20k products (docs/benchmarks.md, "Search per engine")."""
    return {
        "multi_match": {
            "query": q,
            "fields": ["name", "description"],
        }
    }


def suggest_body(prefix: str, limit: int) -> dict[str, Any]:
    """Completions for what the shopper has typed so far: every word must be a prefix of
    a word of the name (edge n-grams); a SKU prefix also matches."""
    text = prefix.strip()
    return {
        "query": {
            "bool": {
                "should": [
                    {"match": {"name.autocomplete": {"query": text, "operator": "and"}}},
                    {"prefix": {"sku": {"value": text.lower(), "boost": 2}}},
                ],
                "minimum_should_match": 1,
            }
        },
        "size": min(limit, SUGGEST_MAX),
        "_source": ["id", "sku", "name"],
        "track_total_hits": False,
    }


def _buckets(aggregations: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    buckets: list[dict[str, Any]] = aggregations.get(name, {}).get("values", {}).get("buckets", [])
    return buckets


def facets(aggregations: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Engine aggregations (as `search_body` asks for them) -> `{"category": [{"value",
    "count"}], "brand": ..., "price": [{"key", "from", "to", "count"}]}` (price bounds in
    minor units)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in ("category", "brand"):
        out[name] = [
            {"value": b["key"], "count": b["doc_count"]} for b in _buckets(aggregations, name)
        ]
    out["price"] = [
        {
            "key": b["key"],
            "from_minor": int(b["from"]) if b.get("from") is not None else None,
            "to_minor": int(b["to"]) if b.get("to") is not None else None,
            "count": b["doc_count"],
        }
        for b in _buckets(aggregations, "price")
    ]
    return out
