"""The query DSL builder: pure functions, no engine."""

from __future__ import annotations

import itertools

import pytest

from search.mapping import type_heads
from search.query import (
    MAX_LIMIT,
    SearchParams,
    compound_forms,
    decode_cursor,
    encode_cursor,
    facets,
    price_ranges,
    search_body,
    suggest_body,
    text_query,
)
from storage.cursor import InvalidCursor


def _walk(node: object) -> list[str]:
    """Every dict key anywhere in a DSL tree."""
    if isinstance(node, dict):
        return [k for k in node] + [k2 for v in node.values() for k2 in _walk(v)]
    if isinstance(node, list):
        return [k for v in node for k in _walk(v)]
    return []


def test_text_query_boosts_name_and_matches_sku_exactly_and_by_prefix() -> None:
    body = search_body(SearchParams(q="CH-100"))
    should = body["query"]["bool"]["must"][0]["function_score"]["query"]["bool"]["should"]
    multi = should[0]["multi_match"]
    assert multi["fields"][0] == "name^4"
    assert "fuzziness" not in multi  # typo tolerance is a weaker clause of its own
    fuzzy = [c["multi_match"] for c in should if "fuzziness" in c.get("multi_match", {})]
    assert len(fuzzy) == 1 and fuzzy[0]["boost"] < 1
    assert {"match_phrase": {"name": {"query": "CH-100", "boost": 3, "slop": 1}}} in should
    assert {"term": {"sku": {"value": "ch-100", "boost": 20}}} in should
    assert {"prefix": {"sku": {"value": "ch-100", "boost": 5}}} in should
    assert {"terms": {"codes": ["ch100"], "boost": 10}} in should  # model number
    assert "highlight" in body


def test_user_text_never_reaches_query_string_syntax() -> None:
    body = search_body(SearchParams(q='name:* OR (a AND "b"'))
    keys = _walk(body)
    assert "query_string" not in keys and "simple_query_string" not in keys
    should = body["query"]["bool"]["must"][0]["function_score"]["query"]["bool"]["should"]
    assert should[0]["multi_match"]["query"] == 'name:* OR (a AND "b"'  # plain text


def test_empty_q_browses_with_match_all() -> None:
    body = search_body(SearchParams())
    assert body["query"]["bool"]["must"] == [{"match_all": {}}]
    assert "highlight" not in body


def test_filters() -> None:
    body = search_body(
        SearchParams(
            category="Furniture/Chairs",
            brands=("Acme", "Bolt"),
            min_price_minor=1000,
            max_price_minor=5000,
            in_stock=True,
            attributes={"color": "red"},
        )
    )
    brand = {"terms": {"brand": ["Acme", "Bolt"]}}
    price = {"range": {"price_minor": {"gte": 1000, "lte": 5000}}}
    assert body["query"]["bool"]["filter"] == [
        {"term": {"category_path": "Furniture/Chairs"}},
        {"term": {"in_stock": True}},
        {"term": {"attributes.color": "red"}},
    ]
    # hits: every filter; each multi-select facet: every filter but its own
    assert body["post_filter"] == {"bool": {"filter": [brand, price]}}
    aggs = body["aggs"]
    assert aggs["category"]["filter"] == {"bool": {"filter": [brand, price]}}
    assert aggs["brand"]["filter"] == {"bool": {"filter": [price]}}
    assert aggs["price"]["filter"] == {"bool": {"filter": [brand]}}
    assert aggs["brand"]["aggs"]["values"]["terms"]["field"] == "brand"


def test_no_post_filter_without_facet_filters() -> None:
    body = search_body(SearchParams(category="Lighting"))
    assert "post_filter" not in body
    assert body["aggs"]["brand"]["filter"] == {"bool": {"filter": []}}


@pytest.mark.parametrize(
    ("sort", "first"),
    [
        ("relevance", {"_score": "desc"}),
        ("price_asc", {"price_minor": "asc"}),
        ("price_desc", {"price_minor": "desc"}),
        ("newest", {"created_at": "desc"}),
        ("rating", {"rating": {"order": "desc", "missing": "_last"}}),
    ],
)
def test_every_sort_has_a_unique_tie_breaker(sort: str, first: dict[str, object]) -> None:
    body = search_body(SearchParams(sort=sort))  # type: ignore[arg-type]
    assert body["sort"][0] == first
    assert "id" in body["sort"][-1]


def test_cursor_round_trip_and_search_after() -> None:
    cursor = encode_cursor("price_asc", [1999, 42])
    assert decode_cursor(cursor, "price_asc") == [1999, 42]
    body = search_body(SearchParams(sort="price_asc", search_after=[1999, 42]))
    assert body["search_after"] == [1999, 42]


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", "bm90IGpzb24", encode_cursor("price_asc", [1]), encode_cursor("newest", [1, 2])],
)
def test_bad_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "price_asc")


def test_price_buckets_cover_everything_without_gaps() -> None:
    ranges = price_ranges()
    assert "from" not in ranges[0] and "to" not in ranges[-1]
    for low, high in itertools.pairwise(ranges):
        assert low["to"] == high["from"]


def test_facets_shape() -> None:
    shaped = facets(
        {
            "category": {"doc_count": 3, "values": {"buckets": [{"key": "A/B", "doc_count": 3}]}},
            "brand": {"doc_count": 3, "values": {"buckets": [{"key": "Acme", "doc_count": 2}]}},
            "price": {
                "doc_count": 3,
                "values": {"buckets": [{"key": "*-2500", "to": 2500.0, "doc_count": 1}]},
            },
        }
    )
    assert shaped == {
        "category": [{"value": "A/B", "count": 3}],
        "brand": [{"value": "Acme", "count": 2}],
        "price": [{"key": "*-2500", "from_minor": None, "to_minor": 2500, "count": 1}],
    }


def test_suggest_is_a_prefix_query_with_capped_size() -> None:
    body = suggest_body("Off ch", 500)
    should = body["query"]["bool"]["should"]
    assert should[0]["match"]["name.autocomplete"] == {"query": "Off ch", "operator": "and"}
    assert should[1]["prefix"]["sku"]["value"] == "off ch"
    assert body["size"] <= 20
    assert MAX_LIMIT == 100


def test_a_split_compound_is_also_scored_glued() -> None:
    """ "arm chair" runs its strong clauses on "arm chair" and "armchair", the best of
    the two counting once (dis_max), so a catalog's Armchair is an exact match."""
    assert compound_forms("arm chair") == ["arm chair", "armchair"]
    assert compound_forms("black dish washer") == [
        "black dish washer",
        "blackdish washer",
        "black dishwasher",
    ]
    assert compound_forms("60 inch tv") == ["60 inch tv", "60 inchtv"]
    assert compound_forms("chair") == ["chair"]
    assert compound_forms(" ".join(["word"] * 9)) == [" ".join(["word"] * 9)]
    should = text_query("arm chair")["bool"]["should"]
    phrases = [c["dis_max"]["queries"] for c in should if "dis_max" in c]
    assert [
        {"match_phrase": {"name": {"query": f, "boost": 3, "slop": 1}}}
        for f in ("arm chair", "armchair")
    ] in phrases
    heads = [q["match"]["type_head"]["query"] for p in phrases for q in p if "match" in q]
    assert heads == ["chair", "armchair"]


def test_the_type_head_includes_the_glued_last_two_words() -> None:
    assert type_heads("Book Cases") == ["Cases", "BookCases"]
    assert type_heads("Armchairs") == ["Armchairs"]
    assert type_heads("TV & Video") == ["Video"]
    assert type_heads("") == []


def test_highlighting_marks_the_shoppers_words_not_the_ranking_query() -> None:
    body = search_body(SearchParams(q="oak desk"))
    assert body["highlight"]["highlight_query"] == {
        "multi_match": {"query": "oak desk", "fields": ["name", "description"]}
    }
    assert "highlight" not in search_body(SearchParams(q=""))
