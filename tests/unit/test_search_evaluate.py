"""Judgment parsing, ranking metrics and the sample judgment list: pure logic."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sampledata.judgments import judgments_csv
from sampledata.shop import product_facts
from search.evaluate import (
    JudgmentFileError,
    compare,
    dcg,
    ndcg,
    parse_judgments,
    recall,
    reciprocal_rank,
)
from search.mapping import codes_in
from search.query import joined_pairs, query_codes

SAMPLE = Path(__file__).parents[2] / "search" / "judgments" / "sample-catalog.csv"


def test_parse_judgments_keeps_order_and_ignores_extra_columns_and_blanks() -> None:
    text = 'query,sku,grade,note\nchair,A,3,x\n\n"27"" monitor",B,1,\nchair,C,0,\n'
    assert parse_judgments(text) == {"chair": {"A": 3, "C": 0}, '27" monitor': {"B": 1}}


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", 0, "empty"),
        ("query,grade\nchair,3\n", 1, "lacks sku"),
        ("query,sku,grade\n", 0, "no judgments"),
        ("query,sku,grade\nchair,A,3\nchair,B\n", 3, "expected 3 columns"),
        ("query,sku,grade\n,A,3\n", 2, "query is empty"),
        ("query,sku,grade\nchair, ,3\n", 2, "sku is empty"),
        ("query,sku,grade\nchair,A,high\n", 2, "not an integer"),
        ("query,sku,grade\nchair,A,11\n", 2, "outside"),
        ("query,sku,grade\nchair,A,3\nchair,A,1\n", 3, "graded twice"),
    ],
)
def test_malformed_judgments_name_the_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(JudgmentFileError) as caught:
        parse_judgments(text)
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_metrics() -> None:
    grades = {"a": 3, "b": 1, "c": 0, "d": 3}
    assert dcg([3, 1]) == pytest.approx(7 + 1 / math.log2(3))
    assert ndcg(["a", "d", "b"], grades) == pytest.approx(1.0)
    assert ndcg(["x", "b"], grades) < ndcg(["a", "b"], grades) < 1.0
    assert ndcg(["a"], {"a": 0}) == 0.0  # nothing relevant judged
    assert reciprocal_rank(["c", "b", "d"], grades) == pytest.approx(1 / 3)  # grade >= 2
    assert reciprocal_rank(["c"], grades) == 0.0
    assert recall(["a", "x"], grades) == 0.5
    assert recall(["a"], {"a": 1}) is None  # no relevant product


def test_compare_lists_worse_queries_and_missing_skus() -> None:
    judged = {"q1": {"a": 3, "b": 0}, "q2": {"c": 3}}
    result = compare(
        judged,
        {"q1": ["a"], "q2": ["x", "c"]},
        {"q1": ["b", "a"], "q2": ["c"]},
        indexed_skus={"a", "b", "x"},
    )
    assert [q.query for q in result.worse] == ["q2"]
    assert result.missing_skus == 1
    assert result.polyshop.mrr == pytest.approx((1 + 0.5) / 2)
    assert result.gain is not None


def test_compound_pairs_and_model_codes_of_a_query() -> None:
    assert joined_pairs("t shirt") == ["tshirt"]
    assert joined_pairs("T-Shirt for men") == ["tshirt", "shirtfor", "formen"]
    assert joined_pairs(" ".join("w" * 9)) == []  # bounded
    assert query_codes("sd 500 camera") == ["sd500"]
    assert query_codes("P-650") == ["p650"]
    assert query_codes("27in monitor 2x4 65W") == []  # quantities are not model numbers
    assert codes_in(["Sony WH-1000XM4, 30 ft."]) == ["wh1000xm4"]


def test_shipped_sample_judgments_match_the_seed_generator() -> None:
    # `polyshop seed` (10 000 products, seed 42) + this file: regenerate if it differs
    assert SAMPLE.read_text(encoding="utf-8") == judgments_csv(product_facts(10_000, 42))
    judged = parse_judgments(SAMPLE.read_text(encoding="utf-8"))
    assert len(judged) >= 80
