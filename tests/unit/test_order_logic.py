"""Pure logic of orders: line merging, the status machine, money strings, request
fingerprints and the sample-data generator."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.schemas.orders import OrderIn
from sampledata import shop as seed
from storage import idempotency
from storage.money import format_minor
from storage.orders import IllegalTransition, check_transition, merge_items


def test_merge_items_sums_duplicates_and_sorts_by_product() -> None:
    assert merge_items([(5, 1), (2, 3), (5, 2)]) == [(2, 3), (5, 3)]


@pytest.mark.parametrize(
    ("current", "target", "changes"),
    [
        ("pending", "paid", True),
        ("pending", "cancelled", True),
        ("paid", "shipped", True),
        ("paid", "cancelled", True),
        ("cancelled", "cancelled", False),
        ("paid", "paid", False),
    ],
)
def test_allowed_transitions(current: str, target: str, changes: bool) -> None:
    assert check_transition(current, target) is changes


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("pending", "shipped"),
        ("shipped", "cancelled"),
        ("shipped", "paid"),
        ("cancelled", "paid"),
        ("paid", "pending"),
    ],
)
def test_illegal_transitions(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(current, target)


@pytest.mark.parametrize(
    ("minor", "text"), [(0, "0.00"), (5, "0.05"), (19999, "199.99"), (100, "1.00"), (-250, "-2.50")]
)
def test_format_minor(minor: int, text: str) -> None:
    assert format_minor(minor) == text


def test_fingerprint_ignores_formatting_but_not_content() -> None:
    a = OrderIn.model_validate_json('{"items":[{"product_id":1,"quantity":2}]}')
    b = OrderIn.model_validate_json('{ "items": [ {"quantity": 2, "product_id": 1} ] }')
    c = OrderIn.model_validate_json('{"items":[{"product_id":1,"quantity":3}]}')

    def fp(o: OrderIn) -> bytes:
        return idempotency.fingerprint("POST", "/orders", o.model_dump(mode="json"))

    assert fp(a) == fp(b)
    assert fp(a) != fp(c)


def test_seed_rows_are_deterministic_and_realistic() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = list(seed.product_rows(random.Random(7), 200, 0, now))
    again = list(seed.product_rows(random.Random(7), 200, 0, now))
    other = list(seed.product_rows(random.Random(8), 200, 0, now))
    assert first == again
    assert first != other
    assert len({row[0] for row in first}) == 200  # unique SKUs
    assert all(row[4].count("/") == 2 for row in first)  # three-level category path
    assert all(row[5] > 0 for row in first)  # a price
    assert all(row[3] in row[1] for row in first)  # the brand is in the name


def test_seed_orders_pick_distinct_products_within_the_year() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    orders = list(seed.order_rows(random.Random(1), 500, now, [1, 2, 3], list(range(10, 60))))
    assert len(orders) == 500
    for order, lines in orders:
        products = [line[2] for line in lines]
        assert len(products) == len(set(products)) >= 1
        assert timedelta(0) < now - order[3] <= timedelta(days=366)
    statuses = [order[2] for order, _ in orders]
    assert statuses.count("shipped") > len(statuses) / 2
