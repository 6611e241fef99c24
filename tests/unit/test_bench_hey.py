"""The pure parts of the hey benchmarks: hey's summary parsed, runs combined, Prometheus
counters read, the load curve's read mix and goals judged.

The two summaries under hey_output/ are real hey v0.1.5 output: one run against a
one-threaded HTTP server whose backlog overflowed (answers and refused connections), one
against a closed port (nothing answered)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.deployed import parse_counter
from bench.hey import HeyResult, Leg, combine, hey_command, parse_summary
from bench.load_curve import PRODUCTS_IN_MIX, READ_MIX, Step, goals, mix_urls
from bench.profile import summarize

OUTPUT = Path(__file__).with_name("hey_output")


def test_a_summary_gives_throughput_latency_statuses_and_transport_errors() -> None:
    result = parse_summary((OUTPUT / "answered_and_refused.txt").read_text())
    assert result.requests == 368
    assert result.seconds == pytest.approx(1.0268)
    assert result.rate == pytest.approx(368 / 1.0268)
    assert result.p50_ms == pytest.approx(3.1)
    assert result.p99_ms == pytest.approx(30.8)
    assert result.latency[10] == pytest.approx(0.0020)
    assert result.statuses == {200: 368}
    assert result.transport_errors == 492
    assert result.failed() == 492
    assert next(iter(result.errors)).endswith("connect: connection refused")


def test_a_run_where_nothing_answered_is_all_errors() -> None:
    result = parse_summary((OUTPUT / "all_refused.txt").read_text())
    assert result.requests == 0
    assert result.statuses == {}
    assert result.failed() == 4
    assert math.isnan(result.p50_ms)


def test_refusals_and_other_statuses_count_as_failed_unless_allowed() -> None:
    result = HeyResult(10, 1.0, {50: 0.001}, {200: 7, 429: 2, 503: 1})
    assert result.failed() == 3
    assert result.failed(ok=(200, 429)) == 1


def test_text_that_is_not_a_summary_is_refused() -> None:
    with pytest.raises(ValueError, match="not a hey summary"):
        parse_summary("flag provided but not defined: -x")


def _run(requests: int, seconds: float, scale: float) -> HeyResult:
    points = {10: 1.0, 25: 2.0, 50: 3.0, 75: 4.0, 90: 5.0, 95: 6.0, 99: 7.0}
    return HeyResult(
        requests, seconds, {p: s * scale / 1000 for p, s in points.items()}, {200: requests}
    )


def test_combined_runs_add_requests_and_statuses() -> None:
    a, b = _run(100, 2.0, 1.0), _run(300, 2.5, 1.0)
    b.statuses = {200: 290, 429: 10}
    b.errors = {"reset": 2}
    together = combine([a, b])
    assert together.requests == 400
    assert together.seconds == 2.5  # at the same time: the longer run
    assert together.statuses == {200: 390, 429: 10}
    assert together.errors == {"reset": 2}
    assert combine([a, b], sequential=True).seconds == 4.5


def test_the_mix_percentile_is_exact_for_equal_runs_and_between_the_runs_otherwise() -> None:
    same = combine([_run(100, 1, 1.0), _run(100, 1, 1.0)])
    assert same.p50_ms == pytest.approx(3.0, rel=1e-3)
    assert same.p99_ms == pytest.approx(7.0, rel=1e-3)
    fast, slow = _run(900, 1, 1.0), _run(100, 1, 10.0)
    mixed = combine([fast, slow])
    assert fast.p50_ms <= mixed.p50_ms <= slow.p50_ms
    assert mixed.p50_ms < 4.0  # nine requests in ten are the fast ones
    assert fast.p99_ms < mixed.p99_ms <= slow.p99_ms  # the slow tenth owns the tail


def test_the_hey_command_names_time_clients_headers_and_url() -> None:
    command = hey_command(Path("/bin/hey"), "http://lb/x", 8, 2.5, {"Authorization": "Bearer k"})
    assert command == [
        "/bin/hey", "-z", "2.500s", "-c", "8", "-t", "30",
        "-H", "Authorization: Bearer k", "http://lb/x",
    ]  # fmt: skip
    assert Leg("x", "http://lb/x", 1, 1.0).url == "http://lb/x"


def test_the_read_mix_covers_product_list_search_and_suggest() -> None:
    urls = mix_urls("http://lb", list(range(1, 40)))
    assert set(urls) == set(READ_MIX) == {"product", "list", "search", "suggest"}
    assert urls["product"][0] == "http://lb/products/1"
    assert len(urls["product"]) == PRODUCTS_IN_MIX
    assert all(len(set(found)) == len(found) > 1 for found in urls.values())
    assert sum(READ_MIX.values()) == pytest.approx(1.0)


def test_counters_are_read_by_label_set() -> None:
    page = "\n".join(
        [
            "# HELP polyshop_ratelimit_errors_total Rate-limit checks that failed",
            "# TYPE polyshop_ratelimit_errors_total counter",
            'polyshop_ratelimit_errors_total{reason="timeout_retried"} 3.0',
            'polyshop_ratelimit_errors_total{reason="skipped"} 2.0',
            'polyshop_ratelimit_errors_created{reason="skipped"} 1.7e9',
            "polyshop_other_total 9.0",
        ]
    )
    assert parse_counter(page, "polyshop_ratelimit_errors") == {
        '{reason="timeout_retried"}': 3.0,
        '{reason="skipped"}': 2.0,
    }
    assert parse_counter(page, "polyshop_missing") == {}


def _step(concurrency: int, rate: float, p99_ms: float, *, limiter: bool = False) -> Step:
    result = HeyResult(int(rate), 1.0, {50: 0.001, 99: p99_ms / 1000}, {200: int(rate)})
    return Step(concurrency, limiter, result, {"api": 1.0, "server": 2.0}, {})


def test_the_goals_are_met_by_a_flat_curve_and_missed_by_a_falling_one() -> None:
    flat = [_step(1, 500, 5), _step(8, 1000, 20), _step(64, 950, 80), _step(256, 920, 300)]
    assert all(met for _, met in goals(flat, []))
    falling = [_step(8, 1000, 20), _step(64, 700, 150), _step(256, 950, 300)]
    missed = [text for text, met in goals(falling, []) if not met]
    assert any("64: 0.70x" in text for text in missed)
    assert any("p99 at 64" in text for text in missed)


def test_a_fail_open_decision_or_a_429_without_retry_after_misses_the_limiter_goals() -> None:
    ok = _step(64, 900, 50, limiter=True)
    assert all(met for _, met in goals([], [ok]))
    open_step = _step(64, 900, 50, limiter=True)
    open_step.fail_open = 3
    bare_429 = _step(256, 900, 50, limiter=True)
    bare_429.probes_429, bare_429.probes_429_without_retry_after = 4, 1
    missed = [text for text, met in goals([], [open_step, bare_429]) if not met]
    assert any("fail-open decisions: 3" in text for text in missed)
    assert any("without Retry-After: 1 of 4" in text for text in missed)


def test_a_profile_counts_each_function_once_per_stack_and_its_leaf_as_self() -> None:
    collapsed = "\n".join(
        [
            "process 12:polyshop serve;run (asyncio/base_events.py:600);"
            "get (storage/product_cache.py:80);execute (redis/client.py:10) 6",
            "run (asyncio/base_events.py:600);get (storage/product_cache.py:80);"
            "get (storage/product_cache.py:80) 2",
            "run (asyncio/base_events.py:600);send (h11/_connection.py:500) 2",
            "garbage line",
        ]
    )
    profile = summarize(collapsed)
    assert profile.samples == 10
    inclusive = dict(profile.inclusive)
    assert inclusive["run (asyncio/base_events.py)"] == 100.0
    assert inclusive["get (storage/product_cache.py)"] == 80.0  # recursion counted once
    assert dict(profile.self_time) == {
        "execute (redis/client.py)": 60.0,
        "get (storage/product_cache.py)": 20.0,
        "send (h11/_connection.py)": 20.0,
    }
    assert summarize("").samples == 0
