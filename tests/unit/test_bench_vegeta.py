"""The pure parts of the vegeta mix (bench/vegeta.py): the weighted, interleaved target
list every step of the load curve sends, the attack's command line, and vegeta's CSV
results read back as the whole mix and each kind."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.load_curve import READ_MIX
from bench.vegeta import attack_command, interleave, percentiles, summarise

URLS = {
    "product": ["http://lb/products/1", "http://lb/products/2"],
    "list": ["http://lb/products?limit=20"],
    "search": ["http://lb/search/products?q=a", "http://lb/search/products?q=b"],
    "suggest": ["http://lb/search/suggest?q=a"],
}


def test_the_mix_follows_the_weights_and_never_runs_one_kind_long() -> None:
    targets = interleave(URLS, READ_MIX, length=100)
    counts = Counter(t.kind for t in targets)
    assert counts == {"product": 55, "list": 15, "search": 20, "suggest": 10}
    # spread out: the heaviest kind (55 %) never comes three times in a row
    kinds = [t.kind for t in targets]
    assert not any(kinds[i] == kinds[i + 1] == kinds[i + 2] for i in range(len(kinds) - 2))
    # each kind takes its URLs in turn
    products = [t.url for t in targets if t.kind == "product"]
    assert products[:4] == [*URLS["product"], *URLS["product"]]


def test_any_slice_of_the_mix_is_close_to_the_weights() -> None:
    """A closed loop of any size takes the list in turn: a short run still sends the mix."""
    targets = interleave(URLS, READ_MIX, length=100)
    first = Counter(t.kind for t in targets[:20])
    assert first == {"product": 11, "list": 3, "search": 4, "suggest": 2}


def test_a_mix_without_urls_or_room_is_refused() -> None:
    with pytest.raises(ValueError):
        interleave({"a": []}, {"a": 1.0})
    with pytest.raises(ValueError):
        interleave(URLS, READ_MIX, length=2)


def test_the_attack_is_a_closed_loop_of_n_workers_without_bodies() -> None:
    command = attack_command(Path("/bin/vegeta"), Path("/t.jsonl"), Path("/r.bin"), 64, 4.0)
    assert command[:2] == ["/bin/vegeta", "attack"]
    assert {"-rate=0", "-workers=64", "-max-workers=64", "-duration=4.000s"} <= set(command)
    assert "-max-body=0" in command and "-format=json" in command


def test_results_are_read_per_kind_with_transport_errors_apart() -> None:
    # real vegeta v12.13.0 CSV rows (timestamp ns, status, latency ns, bytes out, bytes in,
    # error, body, attack, seq, method, url, headers), bodies not kept
    rows = "\n".join(
        [
            "1000000000,200,10000000,0,7063,,,,0,GET,http://lb/products/1,",
            "1001000000,200,20000000,0,7063,,,,1,GET,http://lb/search/products?q=a,",
            '1002000000,0,671187,0,0,"Get ""http://lb/x"": connection refused",,,2,GET,'
            "http://lb/products/2,",
            "1500000000,404,30000000,0,335,404 Not Found,,,3,GET,http://lb/products/1,",
        ]
    )
    kind_of = {u: k for k, urls in URLS.items() for u in urls}
    total, by_kind = summarise(rows, kind_of)
    assert total.requests == 3  # answered: the refused connection is an error
    assert total.statuses == {200: 2, 404: 1}
    assert total.transport_errors == 1
    assert total.failed() == 2
    assert total.seconds == pytest.approx(0.53)  # first start to last answer
    assert by_kind["product"].statuses == {200: 1, 404: 1}
    assert by_kind["search"].requests == 1
    assert by_kind["search"].seconds == total.seconds  # rates add up to the mix's
    assert total.p99_ms == pytest.approx(30.0)


def test_percentiles_are_nearest_rank() -> None:
    points = percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert points[50] == pytest.approx(0.050)
    assert points[99] == pytest.approx(0.099)
    assert percentiles([]) == {}
