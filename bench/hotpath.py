"""The hot read path through nginx, measured with hey (issue 19's benchmarks, one run).

    flock /work/wt/bench.lock uv run python -m bench.hotpath \
        [--seconds 6] [--rounds 2] [--concurrency 16] [--replicas 2]

Deploys the app as `make run` does (API replicas behind nginx, bench/deployed.py) with
data of its own, then measures, each scenario for `--seconds` with `--concurrency` hey
clients, in `--rounds` rounds (the phases alternate so machine noise hits all):

- phase "limiter on" (buckets far above the load, so nothing is refused, but every
  request pays the limiter): cached `GET /products/{id}`, the bare endpoint returning
  the same bytes from memory, an authenticated `GET /orders/{id}` and the first list
  page (`/products?limit=20`, from the list cache);
- phase "limiter off": the cached product read;
- phase "limiter in nginx": the per-address bucket in nginx (`limit_req`), the app's
  limiter for API keys only: the cached read and the authenticated order read;
- phase "cache off" (limiter on): the same reads from Postgres.

Prints per scenario req/s, p50, p99, non-200 answers and the server's CPU per request
(API replicas, nginx, Redis, Postgres), then the issue's ratios against the baselines
of this run. `--profile` attaches py-spy to one replica during a run of its own of the
cached product read and of the authenticated order read (limiter on), and prints where
each spends its samples.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import profile as spy
from bench.deployed import deployed, reconfigure
from bench.hey import HeyResult, ServerCpu, combine, run_hey
from bench.mixed_workload import Deployment

BIG = str(10**6)  # bucket sizes nobody reaches: the limiter runs, refuses nothing
LIMITER_ON = {
    "POLYSHOP_RATE_LIMIT_ENABLED": "true",
    "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "false",  # both buckets in the app
    "POLYSHOP_RATE_LIMIT_KEY_CAPACITY": BIG,
    "POLYSHOP_RATE_LIMIT_KEY_PER_S": BIG,
    "POLYSHOP_RATE_LIMIT_ADDRESS_CAPACITY": BIG,
    "POLYSHOP_RATE_LIMIT_ADDRESS_PER_S": BIG,
    "POLYSHOP_BENCH_ROUTES": "true",
    "POLYSHOP_CACHE_ENABLED": "true",
}
PHASES: dict[str, dict[str, str]] = {
    "limiter on": LIMITER_ON,
    "limiter off": {**LIMITER_ON, "POLYSHOP_RATE_LIMIT_ENABLED": "false"},
    # the per-address limit in nginx (limit_req), the app limits API keys only
    "limiter in nginx": {**LIMITER_ON, "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "true"},
    "cache off": {
        **LIMITER_ON,
        "POLYSHOP_CACHE_ENABLED": "false",
        "POLYSHOP_PRODUCT_LIST_CACHE_TTL_S": "0",
    },
}
CACHED, BARE, ORDER = "cached product", "bare (same bytes)", "GET /orders/{id} (auth)"
CACHED_OFF, UNCACHED = "cached product, limiter off", "uncached product (Postgres)"
CACHED_NGINX = "cached product, address limit in nginx"
LIST, LIST_UNCACHED = "list page (cached)", "list page (Postgres)"
LIST_QUERY = "/products?limit=20"
ORDER_NGINX = "GET /orders/{id} (auth), address limit in nginx"


@dataclass
class Measured:
    runs: list[HeyResult] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)

    @property
    def all(self) -> HeyResult:
        return combine(self.runs, sequential=True)

    def cpu_ms(self, part: str) -> float:
        total = sum(r.requests for r in self.runs)
        return sum(c[part] * r.requests for c, r in zip(self.cpu, self.runs, strict=True)) / (
            total or 1
        )


def _create_order(deployment: Deployment) -> int:
    response = httpx.post(
        f"{deployment.base_url}/orders",
        json={"items": [{"product_id": deployment.product_ids[1], "quantity": 1}]},
        headers={
            "Authorization": f"Bearer {deployment.customer_key}",
            "Idempotency-Key": uuid.uuid4().hex,
        },
        timeout=30,
    )
    response.raise_for_status()
    return int(response.json()["id"])


def _scenarios(
    deployment: Deployment, phase: str, order_id: int
) -> dict[str, tuple[str, Mapping[str, str]]]:
    base, product = deployment.base_url, deployment.product_ids[0]
    if phase == "limiter on":
        auth = {"Authorization": f"Bearer {deployment.customer_key}"}
        return {
            CACHED: (f"{base}/products/{product}", {}),
            BARE: (f"{base}/_bench/bare/{product}", {}),
            ORDER: (f"{base}/orders/{order_id}", auth),
            LIST: (f"{base}{LIST_QUERY}", {}),
        }
    if phase == "limiter off":
        return {CACHED_OFF: (f"{base}/products/{product}", {})}
    if phase == "limiter in nginx":
        auth = {"Authorization": f"Bearer {deployment.customer_key}"}
        return {
            CACHED_NGINX: (f"{base}/products/{product}", {}),
            ORDER_NGINX: (f"{base}/orders/{order_id}", auth),
        }
    return {
        UNCACHED: (f"{base}/products/{product}", {}),
        LIST_UNCACHED: (f"{base}{LIST_QUERY}", {}),
    }


def _replica_pid(cpu: ServerCpu) -> int:
    return next(pid for name, pid in cpu.meter.trees.items() if name.startswith("api:"))


PROFILED = (CACHED, ORDER)  # the scenarios `--profile` samples


def measure(
    deployment: Deployment,
    seconds: float,
    rounds: int,
    concurrency: int,
    *,
    profile: bool,
    keep_stacks: Path | None = None,
) -> tuple[dict[str, Measured], dict[str, spy.Profile]]:
    order_id = _create_order(deployment)
    out: dict[str, Measured] = {}
    profiled: dict[str, spy.Profile] = {}
    for round_no in range(rounds):
        for phase, settings in PHASES.items():
            deployment = reconfigure(deployment, settings)
            cpu = ServerCpu(deployment.layout)
            for name, (url, headers) in _scenarios(deployment, phase, order_id).items():
                run_hey(url, concurrency=concurrency, seconds=1, headers=headers)  # warm
                # the profiled run is its own: py-spy's sampling costs the replica CPU
                if profile and round_no == 0 and name in PROFILED:
                    recording = spy.start(_replica_pid(cpu), seconds)
                    run_hey(url, concurrency=concurrency, seconds=seconds, headers=headers)
                    keep = keep_stacks / f"{_slug(name)}.txt" if keep_stacks else None
                    profiled[name] = spy.finish(*recording, top=20, keep=keep)
                before = cpu.measure()
                result = run_hey(url, concurrency=concurrency, seconds=seconds, headers=headers)
                after = cpu.measure()
                measured = out.setdefault(name, Measured())
                measured.runs.append(result)
                measured.cpu.append(ServerCpu.per_request_ms(before, after, result.requests))
                print(
                    f"{name}: {result.rate:.0f} req/s, p50 {result.p50_ms:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    return out, profiled


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name).split()).lower()


def report(results: Mapping[str, Measured]) -> str:
    lines = [
        "| scenario | req/s | p50 ms | p99 ms | not 200 | API core-ms/req | server core-ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in results.items():
        r = m.all
        lines.append(
            f"| {name} | {r.rate:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.failed()} "
            f"| {m.cpu_ms('api'):.3f} | {m.cpu_ms('server'):.3f} |"
        )
    rate = {name: m.all.rate for name, m in results.items()}
    p50 = {name: m.all.p50_ms for name, m in results.items()}
    lines += [
        "",
        f"- cached / bare throughput: {rate[CACHED] / rate[BARE]:.2f}x (goal >= 0.7x)",
        f"- cached / uncached throughput: {rate[CACHED] / rate[UNCACHED]:.2f}x (goal >= 2x)",
        f"- limiter on / off, cached read: {rate[CACHED] / rate[CACHED_OFF]:.2f}x (goal >= 0.9x)",
        f"- limiter (address bucket in nginx) / off, cached read:"
        f" {rate[CACHED_NGINX] / rate[CACHED_OFF]:.2f}x (goal >= 0.9x)",
        f"- cached (address bucket in nginx) / bare: {rate[CACHED_NGINX] / rate[BARE]:.2f}x",
        f"- p50 authenticated GET /orders/{{id}} / anonymous cached product: "
        f"{p50[ORDER] / p50[CACHED]:.2f}x (goal <= 1.5x); with the address bucket in nginx"
        f" {p50[ORDER_NGINX] / p50[CACHED_NGINX]:.2f}x",
        f"- list page ({LIST_QUERY}) cached / from Postgres:"
        f" {rate[LIST] / rate[LIST_UNCACHED]:.2f}x (API core-ms"
        f" {results[LIST].cpu_ms('api'):.3f} vs {results[LIST_UNCACHED].cpu_ms('api'):.3f})",
        f"- server CPU per cached request: {results[CACHED].cpu_ms('server'):.3f} core-ms"
        f" (API {results[CACHED].cpu_ms('api'):.3f}, nginx {results[CACHED].cpu_ms('nginx'):.3f},"
        f" Redis {results[CACHED].cpu_ms('redis'):.3f}); with the address bucket in nginx"
        f" {results[CACHED_NGINX].cpu_ms('server'):.3f}, limiter off"
        f" {results[CACHED_OFF].cpu_ms('server'):.3f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy one replica during a cached-read run and an order-read run",
    )
    parser.add_argument(
        "--profile-stacks",
        type=Path,
        default=None,
        help="with --profile: also write py-spy's collapsed stacks into this directory",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with deployed(
        "hotpath", replicas=args.replicas, products=args.products, settings=LIMITER_ON
    ) as deployment:
        results, profiled = measure(
            deployment,
            args.seconds,
            args.rounds,
            args.concurrency,
            profile=args.profile,
            keep_stacks=args.profile_stacks,
        )
    print(
        f"hot path through nginx: {args.replicas} replicas, {args.concurrency} hey clients,"
        f" {args.rounds} x {args.seconds:.0f} s per scenario; load average at start"
        f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f},"
        f" at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )
    print(report(results))
    for name, found in profiled.items():
        print(f"\npy-spy, one replica, {name} under hey ({args.seconds:.0f} s):")
        print(spy.table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
