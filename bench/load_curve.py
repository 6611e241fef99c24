"""Load curve through nginx: a read mix at 1, 8, 64 and 256 concurrent clients (vegeta),
with the rate limiter off, on (in the app), and on with the per-address bucket in nginx.

    flock /work/wt/bench.lock uv run python -m bench.load_curve \
        [--seconds 8] [--steps 1,8,64,256] [--replicas 2] [--products 200] [--warmup 3] \
        [--engine-warmup 15]

Deploys the app as `make run` does (API replicas behind nginx, bench/deployed.py) on the
dev stack of this environment, against data of its own. The mix (`READ_MIX`): cached
products, list pages, searches, suggestions, several URLs of each (`mix_urls`). Every
step is one closed loop of N clients over the same interleaved list of those URLs
(bench/vegeta.py), so every step sends the same mix. Before the first step the search
engine's JIT is warmed (`--engine-warmup` seconds of the mix), as a running shop's is.
Per step: throughput, p50, p99, errors (anything but 200, transport errors included;
with the limiter on a 429 is counted apart), each kind's rate and p99, and the CPU per
request of the server (API replicas, nginx, Redis, Postgres and the search engine's JVM)
and of the load generator. With the limiter on, the default buckets stand, so the
higher steps are refused in part: the run checks that every refusal was a 429 with
`Retry-After` (the replicas' rejection counters equal vegeta's 429s, and probes during
the step see the header) and that no decision failed open
(`polyshop_ratelimit_errors_total` before/after). Goals (issue 14): limiter off,
throughput at 64 and 256 >= 0.9x the best step, p99 at 64 <= 100 ms, 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from bench.deployed import deployed, reconfigure, replica_metrics
from bench.hey import HeyResult, ServerCpu
from bench.mixed_workload import SEARCH_WORDS, Deployment
from bench.vegeta import Target, attack, interleave

READ_MIX: dict[str, float] = {"product": 0.55, "list": 0.15, "search": 0.20, "suggest": 0.10}
STEPS = (1, 8, 64, 256)
# the limiter off; on in the app (both buckets in Redis); on with the per-address bucket
# in nginx (limit_req) and the key bucket in the app
MODES: dict[str, dict[str, str]] = {
    "off": {"POLYSHOP_RATE_LIMIT_ENABLED": "false"},
    "on": {"POLYSHOP_RATE_LIMIT_ENABLED": "true", "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "false"},
    "on, address in nginx": {
        "POLYSHOP_RATE_LIMIT_ENABLED": "true",
        "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "true",
    },
}
# fail-open reasons: the request went through without a decision
FAIL_OPEN = ('{reason="redis"}', '{reason="timeout"}', '{reason="skipped"}')


PRODUCTS_IN_MIX = 16  # distinct products read (all cached after the warm-up)


def mix_urls(base_url: str, product_ids: Sequence[int]) -> dict[str, list[str]]:
    """Several URLs of each kind: products, the list's first page at two sizes, a search
    for each word of the bench catalog, a suggestion for each word's first letters."""
    return {
        "product": [f"{base_url}/products/{i}" for i in product_ids[:PRODUCTS_IN_MIX]],
        "list": [f"{base_url}/products?limit=20", f"{base_url}/products?limit=10"],
        "search": [f"{base_url}/search/products?q={w}" for w in SEARCH_WORDS],
        "suggest": [f"{base_url}/search/suggest?q={w[:2]}" for w in SEARCH_WORDS],
    }


def mix_targets(deployment: Deployment) -> list[Target]:
    return interleave(mix_urls(deployment.base_url, deployment.product_ids), READ_MIX)


@dataclass
class Step:
    concurrency: int
    limiter: bool
    result: HeyResult
    cpu_ms: dict[str, float]
    by_kind: dict[str, HeyResult]
    client_ms: float = 0.0  # the load generator's core-ms per request
    rejections: float = 0.0  # the replicas' polyshop_ratelimit_rejections_total, delta
    fail_open: float = 0.0
    probes_429: int = 0
    probes_429_without_retry_after: int = 0
    problems: list[str] = field(default_factory=list)
    mode: str = ""

    @property
    def refused(self) -> int:
        return self.result.statuses.get(429, 0)

    @property
    def errors(self) -> int:
        return self.result.failed(ok=(200, 429) if self.limiter else (200,))


def _fail_open(deployment: Deployment) -> float:
    counts = replica_metrics(deployment, "polyshop_ratelimit_errors")
    return sum(v for labels, v in counts.items() if labels in FAIL_OPEN)


def _rejections(deployment: Deployment) -> float:
    return sum(replica_metrics(deployment, "polyshop_ratelimit_rejections").values())


class _Prober(threading.Thread):
    """A few plain requests during a step, to see the headers of the refusals."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, stop
        self.refused = 0
        self.without_retry_after = 0

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.2):
                try:
                    response = client.get(self.url)
                except httpx.HTTPError:
                    continue
                if response.status_code == 429:
                    self.refused += 1
                    if not response.headers.get("retry-after", "").isdigit():
                        self.without_retry_after += 1


def run_step(
    deployment: Deployment,
    concurrency: int,
    seconds: float,
    *,
    limiter: bool,
    cpu: ServerCpu | None = None,
    mode: str = "",
) -> Step:
    """One step of the curve on a running deployment."""
    targets = mix_targets(deployment)
    cpu = cpu or ServerCpu(deployment.layout, engine=search_engine(deployment))
    rejections_before = _rejections(deployment) if limiter else 0.0
    fail_open_before = _fail_open(deployment) if limiter else 0.0
    stop = threading.Event()
    prober = _Prober(targets[0].url, stop)
    before = cpu.measure()
    if limiter:
        prober.start()
    run = attack(targets, concurrency=concurrency, seconds=seconds)
    after = cpu.measure()
    stop.set()
    if limiter:
        prober.join()
    result = run.total
    step = Step(
        concurrency,
        limiter,
        result,
        ServerCpu.per_request_ms(before, after, result.requests),
        run.by_kind,
        client_ms=run.client_cpu_s * 1000 / max(1, result.requests),
        mode=mode or ("on" if limiter else "off"),
    )
    if limiter:
        step.rejections = _rejections(deployment) - rejections_before - prober.refused
        step.fail_open = _fail_open(deployment) - fail_open_before
        step.probes_429 = prober.refused
        step.probes_429_without_retry_after = prober.without_retry_after
        # refusals by nginx never reach the app's counter
        if step.rejections != step.refused and "nginx" not in step.mode:
            step.problems.append(
                f"replicas refused {step.rejections:.0f}, vegeta saw {step.refused} 429s"
            )
    return step


def search_engine(deployment: Deployment) -> str:
    """The dev stack service that answers this deployment's searches."""
    return deployment.env.get("POLYSHOP_SEARCH_ENGINE", "opensearch")


def _row(step: Step) -> str:
    r = step.result
    return (
        f"| {step.mode} | {step.concurrency} | {r.requests} "
        f"| {r.rate:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {step.errors} "
        f"| {step.refused if step.limiter else '-'} | {step.cpu_ms['api']:.2f} "
        f"| {step.cpu_ms['engine']:.2f} | {step.cpu_ms['server']:.2f} | {step.client_ms:.2f} "
        f"| {_kinds(step)} |"
    )


def _kinds(step: Step) -> str:
    """Each kind's rate and p99: which part of the mix holds the step back."""
    return ", ".join(
        f"{kind} {r.rate:.0f}/s p99 {r.p99_ms:.0f}" for kind, r in sorted(step.by_kind.items())
    )


def goals(off: Sequence[Step], on: Sequence[Step]) -> list[tuple[str, bool]]:
    """The issue's goals, each with whether this run met it."""
    out: list[tuple[str, bool]] = []
    if off:
        best = max(s.result.rate for s in off)
        for step in off:
            if step.concurrency in (64, 256):
                ratio = step.result.rate / best if best else 0.0
                out.append((f"limiter off, {step.concurrency}: {ratio:.2f}x best", ratio >= 0.9))
            if step.concurrency == 64:
                p99 = step.result.p99_ms
                out.append((f"limiter off, p99 at 64: {p99:.1f} ms <= 100", p99 <= 100))
        errors = sum(s.errors for s in off)
        out.append((f"limiter off, errors: {errors}", errors == 0))
    if on:
        fail_open = sum(s.fail_open for s in on)
        out.append((f"limiter on, fail-open decisions: {fail_open:.0f}", fail_open == 0))
        missing = sum(s.probes_429_without_retry_after for s in on)
        probes = sum(s.probes_429 for s in on)
        out.append(
            (f"limiter on, probed 429s without Retry-After: {missing} of {probes}", missing == 0)
        )
        counted = all(not s.problems for s in on)
        out.append(("limiter on, every 429 the generator saw was counted as a refusal", counted))
        errors = sum(s.errors for s in on)
        out.append((f"limiter on, errors other than 429: {errors}", errors == 0))
    return out


def report(steps: Sequence[Step]) -> str:
    lines = [
        "| limiter | clients | requests | req/s | p50 ms | p99 ms | errors | 429 "
        "| API core-ms/req | engine core-ms/req | server core-ms/req | vegeta core-ms/req "
        "| per kind |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *(_row(s) for s in steps),
    ]
    off = [s for s in steps if not s.limiter]
    on = [s for s in steps if s.limiter]
    lines.append("")
    for text, met in goals(off, on):
        lines.append(f"- {text}: {'met' if met else 'MISSED'}")
    for s in steps:
        for problem in s.problems:
            lines.append(f"- step {s.concurrency} (limiter {s.mode}): {problem}")
    return "\n".join(lines)


def curve(
    deployment: Deployment,
    steps: Sequence[int],
    seconds: float,
    warmup: float,
    engine_warmup: float = 0.0,
) -> list[Step]:
    done: list[Step] = []
    for n, (mode, settings) in enumerate(MODES.items()):
        limiter = mode != "off"
        deployment = reconfigure(deployment, settings)
        # the replicas restarted: new pids
        cpu = ServerCpu(deployment.layout, engine=search_engine(deployment))
        if n == 0 and engine_warmup > 0:  # the engine's JIT, once: it outlives the replicas
            run_step(deployment, 8, engine_warmup, limiter=limiter, cpu=cpu, mode=mode)
        run_step(deployment, 8, warmup, limiter=limiter, cpu=cpu, mode=mode)  # warm up
        for concurrency in steps:
            step = run_step(deployment, concurrency, seconds, limiter=limiter, cpu=cpu, mode=mode)
            print(_row(step), file=sys.stderr, flush=True)
            done.append(step)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per step")
    parser.add_argument("--warmup", type=float, default=3.0, help="per mode")
    parser.add_argument("--engine-warmup", type=float, default=15.0, help="once, first")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)))
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--products", type=int, default=200)
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    load = os.getloadavg()
    with deployed("curve", replicas=args.replicas, products=args.products) as deployment:
        asyncio.run(_index_settle())
        done = curve(deployment, steps, args.seconds, args.warmup, args.engine_warmup)
    print(
        f"load curve through nginx, {args.replicas} replicas, {args.seconds:.0f} s per step,"
        f" mix {READ_MIX}; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f},"
        f" at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )
    print(report(done))
    return 0 if all(met for _, met in goals(*_split(done))) else 1


def _split(steps: Sequence[Step]) -> tuple[list[Step], list[Step]]:
    return [s for s in steps if not s.limiter], [s for s in steps if s.limiter]


async def _index_settle() -> None:
    await asyncio.sleep(2)  # the relay indexes the catalog (about 1 s commit to searchable)


if __name__ == "__main__":
    sys.exit(main())
