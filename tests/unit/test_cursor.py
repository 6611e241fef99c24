"""The one cursor codec: round trips, and refusals of other listings and garbage."""

from __future__ import annotations

import pytest

from storage.cursor import InvalidCursor, decode_cursor, encode_cursor


def test_round_trip_keeps_the_values() -> None:
    cursor = encode_cursor("orders", ["2026-12-02T10:00:00+00:00", 42])
    assert decode_cursor(cursor, "orders", 2) == ["2026-12-02T10:00:00+00:00", 42]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm90IGpzb24",  # "not json"
        encode_cursor("products", [1]),  # another listing
        encode_cursor("orders", [1]),  # too few values
        encode_cursor("orders", [[1], 2]),  # type: ignore[list-item]  # not a scalar
        encode_cursor("orders", [True, 2]),  # a bool is no number
    ],
)
def test_refuses_what_it_did_not_issue(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "orders", 2)
