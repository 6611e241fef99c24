"""SearchRequestKeys (app/search_request_keys.py): the thin search routes' memo of which
cache digest a query string led to is bounded, least recently used out first."""

from __future__ import annotations

from app.search_request_keys import SearchRequestKeys


def test_a_remembered_query_string_is_recalled_per_kind() -> None:
    keys = SearchRequestKeys()
    keys.remember("products", b"q=oak", "d1")
    assert keys.recall("products", b"q=oak") == "d1"
    assert keys.recall("suggest", b"q=oak") is None  # another kind, another answer
    assert keys.recall("products", b"q=oak&limit=20") is None  # only the very string


def test_the_least_recently_used_goes_first_when_full() -> None:
    keys = SearchRequestKeys(max_entries=2)
    keys.remember("products", b"q=a", "a")
    keys.remember("products", b"q=b", "b")
    assert keys.recall("products", b"q=a") == "a"  # used: b is now the oldest
    keys.remember("products", b"q=c", "c")
    assert len(keys) == 2
    assert keys.recall("products", b"q=b") is None
    assert keys.recall("products", b"q=a") == "a" and keys.recall("products", b"q=c") == "c"


def test_a_long_query_string_is_not_kept() -> None:
    keys = SearchRequestKeys(max_query_bytes=8)
    keys.remember("products", b"q=" + b"x" * 7, "long")
    assert keys.recall("products", b"q=" + b"x" * 7) is None and len(keys) == 0
    keys.remember("products", b"q=" + b"x" * 6, "fits")
    assert keys.recall("products", b"q=" + b"x" * 6) == "fits"
