"""A weighted mix of URLs in one closed loop, from vegeta (Go, pinned, built by
`devstack.ensure_vegeta` with `go install`, as hey is).

hey sends one URL per process, so a mix from hey is one process per URL, each a closed
loop of its own: the fast URLs then take most of the requests, and a step with fewer
clients than URLs has to run the URLs one after another. vegeta with `-rate=0` and N
workers is one closed loop of N clients that takes the targets in turn from one list, so
every step sends the same mix, whatever its number of clients: `interleave` spreads the
kinds of request over that list by weight (smooth weighted round robin), each kind
cycling through its own URLs.

`attack` runs vegeta for a fixed time and reads its results back (`vegeta encode -to
csv`, bodies not kept): every request with its status (0 for a transport error, with the
error text), its latency and its URL, so the whole mix and each kind get exact
percentiles. The result type is hey's (`bench.hey.HeyResult`), so reports and goals
treat both alike.
"""

from __future__ import annotations

import csv
import json
import math
import resource
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import devstack
from bench.hey import PERCENTS, HeyResult


@dataclass(frozen=True)
class Target:
    kind: str  # the part of the mix ("product", "search", ...)
    url: str


@dataclass(frozen=True)
class Attack:
    """One vegeta run: the whole mix, each kind, and what vegeta itself cost."""

    total: HeyResult
    by_kind: dict[str, HeyResult]
    client_cpu_s: float  # vegeta's own CPU time (user + system)


def interleave(
    urls: Mapping[str, Sequence[str]], weights: Mapping[str, float], length: int = 100
) -> list[Target]:
    """`length` targets with each kind's share as close to its weight as whole requests
    allow, spread out (smooth weighted round robin: no run of one kind), each kind taking
    its URLs in turn."""
    kinds = [k for k in urls if weights.get(k, 0) > 0 and urls[k]]
    if not kinds or length < len(kinds):
        raise ValueError("a mix needs a kind with a positive weight and URLs, and room")
    total = sum(weights[k] for k in kinds)
    current = dict.fromkeys(kinds, 0.0)
    used = dict.fromkeys(kinds, 0)
    out: list[Target] = []
    for _ in range(length):
        for k in kinds:
            current[k] += weights[k] / total
        kind = max(kinds, key=lambda k: current[k])
        current[kind] -= 1.0
        out.append(Target(kind, urls[kind][used[kind] % len(urls[kind])]))
        used[kind] += 1
    return out


def vegeta_binary(layout: devstack.Layout = devstack.LAYOUT) -> Path:
    """The pinned vegeta, built into the stack's bin dir on first use."""
    return devstack.ensure_vegeta(layout)


def attack_command(
    binary: Path, targets: Path, output: Path, concurrency: int, seconds: float
) -> list[str]:
    return [
        str(binary),
        "attack",
        "-format=json",
        f"-targets={targets}",
        "-rate=0",  # as fast as the workers go: a closed loop
        f"-workers={concurrency}",
        f"-max-workers={concurrency}",
        f"-duration={seconds:.3f}s",
        "-timeout=30s",
        "-max-body=0",  # statuses and latencies are enough; bodies would fill the file
        f"-output={output}",
    ]


def attack(
    targets: Sequence[Target],
    *,
    concurrency: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    binary: Path | None = None,
) -> Attack:
    """`concurrency` workers for `seconds` over `targets` in turn; waits for the end."""
    if concurrency < 1 or seconds <= 0 or not targets:
        raise ValueError("an attack needs workers, time and targets")
    binary = binary or vegeta_binary()
    header = {name: [value] for name, value in (headers or {}).items()}
    kind_of = {t.url: t.kind for t in targets}
    with tempfile.TemporaryDirectory(prefix="vegeta-") as tmp:
        listing, output = Path(tmp) / "targets.jsonl", Path(tmp) / "results.bin"
        listing.write_text(
            "".join(
                json.dumps({"method": "GET", "url": t.url, "header": header}) + "\n"
                for t in targets
            )
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            attack_command(binary, listing, output, concurrency, seconds),
            check=True,
            timeout=seconds + 60,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rows = subprocess.run(
            [str(binary), "encode", "-to=csv", str(output)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    total, by_kind = summarise(rows, kind_of)
    return Attack(total, by_kind, cpu)


@dataclass
class _Samples:
    latencies: list[float]
    statuses: dict[int, int]
    errors: dict[str, int]
    start: float = math.inf
    end: float = 0.0

    def add(self, status: int, latency_s: float, error: str, start_s: float) -> None:
        if status == 0:  # no answer: a transport error
            self.errors[error] = self.errors.get(error, 0) + 1
        else:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.latencies.append(latency_s)
        self.start = min(self.start, start_s)
        self.end = max(self.end, start_s + latency_s)

    def result(self, seconds: float) -> HeyResult:
        return HeyResult(
            requests=len(self.latencies),
            seconds=seconds,
            latency=percentiles(self.latencies),
            statuses=dict(self.statuses),
            errors=dict(self.errors),
        )


def summarise(csv_text: str, kind_of: Mapping[str, str]) -> tuple[HeyResult, dict[str, HeyResult]]:
    """vegeta's CSV results (timestamp ns, status, latency ns, bytes out, bytes in, error,
    body, attack, seq, method, URL, headers) as the mix and each kind. Every kind is
    measured over the whole run's time, so the kinds' rates add up to the mix's."""
    whole = _Samples([], {}, {})
    kinds: dict[str, _Samples] = {}
    for row in csv.reader(csv_text.splitlines()):
        if len(row) < 11:
            continue
        start, status, latency = int(row[0]) / 1e9, int(row[1]), int(row[2]) / 1e9
        kind = kind_of.get(row[10], "other")
        for samples in (whole, kinds.setdefault(kind, _Samples([], {}, {}))):
            samples.add(status, latency, row[5], start)
    seconds = max(0.0, whole.end - whole.start) if whole.end else 0.0
    return whole.result(seconds), {k: s.result(seconds) for k, s in kinds.items()}


def percentiles(latencies: Sequence[float]) -> dict[int, float]:
    """hey's points of the distribution (nearest rank), in seconds; none when empty."""
    ordered = sorted(latencies)
    if not ordered:
        return {}
    return {p: ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in PERCENTS}
