"""Token bucket math and bucket ids (pure logic); the client address:
tests/unit/test_client_address.py."""

from __future__ import annotations

import pytest

from app.middleware.ratelimit import is_exempt, key_id, script_args
from app.middleware.token_bucket import Bucket, BucketState, idle_ttl_s, refill, take

BUCKET = Bucket(capacity=3, rate=1.0)


def test_a_new_bucket_is_full_and_spends_one_token_per_request() -> None:
    decision, [state] = take([(BUCKET, None)], now=100.0)
    assert decision.allowed
    assert decision.remaining == 2
    assert decision.limit == 3
    assert state == BucketState(2.0, 100.0)


def test_an_empty_bucket_refuses_and_says_when_to_retry() -> None:
    state: BucketState | None = None
    for _ in range(3):
        decision, [state] = take([(BUCKET, state)], now=100.0)
        assert decision.allowed
    decision, [after] = take([(BUCKET, state)], now=100.0)
    assert not decision.allowed
    assert decision.retry_after_s == pytest.approx(1.0)
    assert decision.remaining == 0
    assert after.tokens == pytest.approx(0.0)  # a refusal costs nothing


def test_tokens_come_back_at_the_rate_and_never_past_the_capacity() -> None:
    empty = BucketState(0.0, 100.0)
    assert refill(BUCKET, empty, 101.5) == pytest.approx(1.5)
    assert refill(BUCKET, empty, 1000.0) == 3
    decision, _ = take([(BUCKET, empty)], now=100.25)
    assert not decision.allowed
    assert decision.retry_after_s == pytest.approx(0.75)


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    assert refill(BUCKET, BucketState(1.0, 100.0), 90.0) == 1.0


def test_a_request_passes_only_if_every_bucket_has_a_token() -> None:
    address = Bucket(capacity=10, rate=5.0)
    key = Bucket(capacity=2, rate=0.5)
    states: list[BucketState | None] = [None, BucketState(0.2, 50.0)]
    decision, after = take(list(zip([address, key], states, strict=True)), now=50.0)
    assert not decision.allowed
    assert decision.tightest == 1  # the key bucket refused
    assert decision.retry_after_s == pytest.approx(1.6)
    assert after[0].tokens == 10  # the address bucket was not charged


def test_the_tightest_bucket_is_reported() -> None:
    address = Bucket(capacity=10, rate=5.0)
    key = Bucket(capacity=2, rate=0.5)
    decision, _ = take([(address, None), (key, None)], now=0.0)
    assert decision.allowed
    assert (decision.limit, decision.remaining, decision.tightest) == (2, 1, 1)
    assert decision.reset_s == pytest.approx(2.0)


def test_idle_buckets_expire_once_they_would_be_full() -> None:
    assert idle_ttl_s(Bucket(capacity=100, rate=10.0)) == 11


def test_the_key_bucket_id_is_a_hash_never_the_key() -> None:
    ident = key_id("Bearer ps_secret_value")
    assert ident is not None
    assert "ps_secret_value" not in ident
    assert ident == key_id("bearer  ps_secret_value ")
    assert ident != key_id("Bearer other")
    assert key_id("Basic abc") is None
    assert key_id("Bearer ") is None
    assert key_id(None) is None


@pytest.mark.parametrize(
    ("path", "exempt"),
    [
        ("/healthz", True),
        ("/readyz", True),
        ("/metrics", True),
        ("/docs", True),
        ("/static/swagger/x.js", True),
        ("/products", False),
        ("/metricsfoo", False),
    ],
)
def test_exempt_paths(path: str, exempt: bool) -> None:
    assert is_exempt(path) is exempt


def test_the_scripts_args_are_the_cost_then_each_buckets_capacity_rate_and_ttl() -> None:
    assert script_args([]) == (b"1",)
    args = script_args([Bucket(600, 10.0), Bucket(2, 0.25)])
    assert args == (b"1", b"600", b"10.0", b"61", b"2", b"0.25", b"9")
