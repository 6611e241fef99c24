"""Load from hey, a compiled HTTP load generator, and the servers' CPU per request.

A Python client competes with the server for the GIL-free share of a 2-core machine and
costs more CPU per request than the server it measures; hey (Go, pinned, built by
`devstack.ensure_hey` with `go install`) costs a fraction of it. `run_hey` runs one hey
process against one URL for a fixed time and parses its summary (throughput, latency
distribution, status codes, transport errors); `combine` joins runs (the rounds of one
scenario); `ServerCpu` reads the CPU time of the stack's API replicas, nginx, Redis,
Postgres and, if asked, the search engine from /proc (bench/cpu.py) so a step can report
core-ms per request. A weighted mix of URLs in one closed loop is vegeta's
(bench/vegeta.py).

The summary, not `-o csv`, is parsed: hey's CSV lists only the requests that got an
answer, so refused or reset connections (the errors a load curve is about) would vanish.
"""

from __future__ import annotations

import bisect
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import devstack
from bench.cpu import CpuMeter, spent

# hey prints these points of the latency distribution (percent -> seconds)
PERCENTS = (10, 25, 50, 75, 90, 95, 99)

_RPS = re.compile(r"^\s*Requests/sec:\s*([0-9.]+)", re.M)
_TOTAL = re.compile(r"^\s*Total:\s*([0-9.]+) secs", re.M)
_PCT = re.compile(r"^\s*(\d+)%+ in ([0-9.]+) secs", re.M)
_STATUS = re.compile(r"^\s*\[(\d+)\]\s+(\d+) responses", re.M)


@dataclass
class HeyResult:
    """One hey run (or several combined): what the clients saw."""

    requests: int  # answered requests (any status)
    seconds: float
    latency: dict[int, float]  # percent -> seconds, from hey's distribution
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # transport errors by message

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return self.latency.get(50, float("nan")) * 1000

    @property
    def p99_ms(self) -> float:
        return self.latency.get(99, float("nan")) * 1000

    @property
    def transport_errors(self) -> int:
        return sum(self.errors.values())

    def failed(self, ok: Sequence[int] = (200,)) -> int:
        """Requests that did not get one of the `ok` statuses, transport errors included."""
        return self.transport_errors + sum(n for s, n in self.statuses.items() if s not in ok)


def parse_summary(text: str) -> HeyResult:
    """hey's default (summary) output as a `HeyResult`."""
    total = _TOTAL.search(text)
    if total is None:
        raise ValueError(f"not a hey summary: {text[:200]!r}")
    statuses = {int(code): int(n) for code, n in _STATUS.findall(_section(text, "Status code"))}
    latency = {int(p): float(s) for p, s in _PCT.findall(_section(text, "Latency distribution"))}
    errors: dict[str, int] = {}
    for line in _section(text, "Error distribution").splitlines():
        match = re.match(r"^\s*\[(\d+)\]\s+(.*)$", line)
        if match:
            errors[match.group(2).strip()] = errors.get(match.group(2).strip(), 0) + int(
                match.group(1)
            )
    return HeyResult(
        requests=sum(statuses.values()),
        seconds=float(total.group(1)),
        latency=latency,
        statuses=statuses,
        errors=errors,
    )


def _section(text: str, title: str) -> str:
    """The lines under `title:` up to the next blank line."""
    start = text.find(f"{title}")
    if start < 0:
        return ""
    body = text[start:].split("\n", 1)[1] if "\n" in text[start:] else ""
    return body.split("\n\n", 1)[0]


def combine(results: Sequence[HeyResult], *, sequential: bool = False) -> HeyResult:
    """Runs that went on at the same time (or one after another, `sequential`) as one.

    The mix's percentiles come from the runs' distributions: each run's CDF through
    hey's points (linear between them), weighted by its requests, inverted at the
    percent. Exact for one run; between the runs' own values otherwise.
    """
    requests = sum(r.requests for r in results)
    seconds = sum(r.seconds for r in results) if sequential else max(r.seconds for r in results)
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
        for message, n in r.errors.items():
            errors[message] = errors.get(message, 0) + n
    latency = {p: mixture_percentile(results, p) for p in PERCENTS}
    return HeyResult(requests, seconds, latency, statuses, errors)


def _cdf(result: HeyResult, x: float) -> float:
    """Fraction of `result`'s requests at or below `x` seconds (piecewise linear)."""
    points = sorted((s, p / 100) for p, s in result.latency.items())
    if not points:
        return 0.0
    xs = [s for s, _ in points]
    if x < xs[0]:
        return points[0][1] * x / xs[0] if xs[0] > 0 else points[0][1]
    if x >= xs[-1]:
        return points[-1][1] if x == xs[-1] else 1.0
    i = bisect.bisect_right(xs, x)
    (x0, f0), (x1, f1) = points[i - 1], points[i]
    return f0 + (f1 - f0) * (x - x0) / (x1 - x0) if x1 > x0 else f1


def mixture_percentile(results: Sequence[HeyResult], percent: int) -> float:
    """The `percent` point (seconds) of the requests of all `results` together."""
    weighted = [r for r in results if r.requests and r.latency]
    if not weighted:
        return float("nan")
    if len(weighted) == 1:
        return weighted[0].latency.get(percent, float("nan"))
    total = sum(r.requests for r in weighted)
    target = percent / 100

    def fraction(x: float) -> float:
        return sum(r.requests * _cdf(r, x) for r in weighted) / total

    lo = 0.0
    hi = max(max(r.latency.values()) for r in weighted)
    for _ in range(60):  # bisection on a monotone function
        mid = (lo + hi) / 2
        if fraction(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class Leg:
    """One hey process of a mix: `concurrency` clients on `url` for `seconds`."""

    name: str
    url: str
    concurrency: int
    seconds: float


def hey_command(
    binary: Path, url: str, concurrency: int, seconds: float, headers: Mapping[str, str]
) -> list[str]:
    command = [str(binary), "-z", f"{seconds:.3f}s", "-c", str(concurrency), "-t", "30"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return [*command, url]


def hey_binary(layout: devstack.Layout = devstack.LAYOUT) -> Path:
    """The pinned hey, built into the stack's bin dir on first use."""
    return devstack.ensure_hey(layout)


def run_legs(
    legs: Sequence[Leg],
    *,
    sequential: bool = False,
    headers: Mapping[str, str] | None = None,
    binary: Path | None = None,
) -> dict[str, HeyResult]:
    """Run the legs (at once, or one after another) and parse each one's summary."""
    binary = binary or hey_binary()
    results: dict[str, HeyResult] = {}
    if sequential:
        for leg in legs:
            results[leg.name] = _run([leg], binary, headers or {})[leg.name]
        return results
    return _run(list(legs), binary, headers or {})


def _run(legs: list[Leg], binary: Path, headers: Mapping[str, str]) -> dict[str, HeyResult]:
    with tempfile.TemporaryDirectory(prefix="hey-") as tmp:
        outputs = {leg.name: Path(tmp) / f"{i}.txt" for i, leg in enumerate(legs)}
        procs = []
        for leg in legs:
            with outputs[leg.name].open("w") as out:
                command = hey_command(binary, leg.url, leg.concurrency, leg.seconds, headers)
                procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        timeout = max(leg.seconds for leg in legs) + 60
        for proc in procs:
            proc.wait(timeout=timeout)
        return {name: parse_summary(path.read_text()) for name, path in outputs.items()}


def run_hey(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    binary: Path | None = None,
) -> HeyResult:
    legs = [Leg("one", url, concurrency, seconds)]
    return run_legs(legs, headers=headers, binary=binary)["one"]


class ServerCpu:
    """CPU seconds of the server side of a deployment: every API replica, nginx (with its
    workers), the stack's Redis and Postgres (with its backends), and, when `engine`
    names it (a dev stack service: "opensearch", "elasticsearch"), the search engine."""

    def __init__(self, layout: devstack.Layout = devstack.LAYOUT, engine: str = "") -> None:
        self.meter = CpuMeter()
        for service in devstack.status(layout=layout):
            if not service.pid or service.state != "RUNNING":
                continue
            if engine and service.name == engine:
                self.meter.watch("engine", service.pid)
            elif service.name.startswith("api:") or service.name == "nginx":
                self.meter.watch(service.name, service.pid)

    def measure(self) -> dict[str, float]:
        return self.meter.snapshot()

    @staticmethod
    def per_request_ms(
        before: dict[str, float], after: dict[str, float], requests: int
    ) -> dict[str, float]:
        """core-ms per request: `api` (all replicas), `nginx`, `redis`, `postgres`,
        `engine` (0 unless watched), and `server` (their sum); the bench process itself is
        left out."""
        used = spent(before, after)
        n = max(1, requests)
        api = sum(v for k, v in used.items() if k.startswith("api:"))
        out = {"api": api * 1000 / n}
        for name in ("nginx", "redis", "postgres", "engine"):
            out[name] = used.get(name, 0.0) * 1000 / n
        out["server"] = sum(out.values())
        return out
