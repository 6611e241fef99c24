"""A mixed shop workload through the load balancer, shared by `bench.mixed` and the
fault-injection suite (tests/integration/fault/).

`deploy` brings up a dev stack instance with N API replicas behind nginx and the worker
(against a fresh schema), `Workload` drives browse / search / order / upload / patch
requests at it from a few concurrent asyncio tasks and remembers every write the API
acknowledged, so a test can look for each one in Postgres and every derived store.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

import devstack

POLYSHOP = str(Path(sys.executable).parent / "polyshop")

# The mix: browse 70% (one product, or a page of the list), search 20%, orders
# 8%, uploads 2%.
BENCH_MIX: dict[str, float] = {
    "get": 0.55,
    "list": 0.15,
    "search": 0.20,
    "order": 0.08,
    "upload": 0.02,
}
# The fault suite adds catalog writes (PATCH): they go through the outbox to the cache
# and the search index, which is what must converge after each fault.
FAULT_MIX: dict[str, float] = {
    "get": 0.40,
    "list": 0.10,
    "search": 0.20,
    "order": 0.12,
    "patch": 0.15,
    "upload": 0.03,
}
SEARCH_WORDS = ("chair", "lamp", "desk", "oak", "steel", "red", "blue", "table")
RETRYABLE = {0, 502, 503, 504}  # 0: no answer (connection refused/reset, timeout)


@dataclass(frozen=True)
class Deployment:
    """A running instance: where its load balancer listens and the keys to use it."""

    layout: devstack.Layout
    base_url: str
    env: dict[str, str]
    admin_key: str
    customer_key: str
    product_ids: list[int]


def _cli(env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        [POLYSHOP, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"polyshop {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def app_env(layout: devstack.Layout, schema: str, **extra: str) -> dict[str, str]:
    """Settings of the app processes: the instance's services and a schema of their own."""
    return {
        **devstack.service_env(layout=layout),
        "POLYSHOP_DATABASE_SCHEMA": schema,
        "POLYSHOP_SEARCH_INDEX_PREFIX": schema.replace("_", "-"),
        "POLYSHOP_REDIS_PREFIX": f"{schema}:",
        "POLYSHOP_S3_BUCKET": schema.replace("_", "-"),
        "POLYSHOP_DUCKDB_PATH": str(layout.root / "data" / f"{schema}.duckdb"),
        "POLYSHOP_ETL_SCHEDULE_ENABLED": "false",
        **extra,
    }


def deploy(
    layout: devstack.Layout,
    replicas: int,
    *,
    schema: str | None = None,
    products: int = 40,
    extra_env: Mapping[str, str] | None = None,
) -> Deployment:
    """Start the instance's services, migrate a fresh schema, create its search index and
    two API keys, start ``replicas`` API processes + nginx + worker, add a catalog."""
    devstack.up(progress=False, layout=layout)
    schema = schema or f"lb_{uuid.uuid4().hex[:8]}"
    env = app_env(layout, schema, **(extra_env or {}))
    _cli(env, "migrate")
    _cli(env, "search", "reindex")  # creates the (empty) index behind its alias
    admin = _cli(env, "keys", "create", "--role", "admin").splitlines()[-1]
    customer = _cli(env, "keys", "create", "--role", "customer").splitlines()[-1]
    devstack.run_app(progress=False, replicas=replicas, env=env, layout=layout)
    base_url = devstack.api_url(layout=layout)
    ids = asyncio.run(_create_catalog(base_url, admin, products))
    return Deployment(layout, base_url, env, admin, customer, ids)


def on_engine(deployment: Deployment, engine: str) -> Deployment:
    """The deployment with its app processes on the instance's ``engine`` node
    ("opensearch" or "elasticsearch"): the index is rebuilt there from Postgres, then the
    API replicas and the worker restart with the new settings. Same engine: unchanged."""
    if deployment.env.get("POLYSHOP_SEARCH_ENGINE") == engine:
        return deployment
    env = {
        **deployment.env,
        "POLYSHOP_SEARCH_ENGINE": engine,
        "POLYSHOP_SEARCH_URL": devstack.urls(deployment.layout)[engine],
    }
    _cli(env, "search", "reindex")
    replicas = len(devstack.api_replicas(layout=deployment.layout))
    devstack.run_app(progress=False, replicas=replicas, env=env, layout=deployment.layout)
    return replace(deployment, env=env)


def scale(deployment: Deployment, replicas: int) -> None:
    """Run ``replicas`` API processes instead (nginx's upstream list follows)."""
    devstack.run_app(
        progress=False, replicas=replicas, env=deployment.env, layout=deployment.layout
    )


async def _create_catalog(base_url: str, admin_key: str, count: int) -> list[int]:
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        ids = []
        for i in range(count):
            word = SEARCH_WORDS[i % len(SEARCH_WORDS)]
            response = await client.post(
                "/products",
                json={
                    "sku": f"MIX-{uuid.uuid4().hex[:10]}",
                    "name": f"{word.title()} thing {i}",
                    "description": f"A {word} for the mixed workload",
                    "brand": rng.choice(["Acme", "Globex", "Initech"]),
                    "category": "Home/Things",
                    "price": f"{rng.randint(100, 99_999) / 100:.2f}",
                    "stock": 1_000_000,  # orders never run out during a run
                },
            )
            response.raise_for_status()
            ids.append(int(response.json()["id"]))
    return ids


def png(rng: random.Random) -> bytes:
    """A small PNG whose bytes differ per call (uploads are content-addressed)."""
    color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image = Image.new("RGB", (32, 24), color)
    image.putpixel((rng.randrange(32), rng.randrange(24)), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Sample:
    """One HTTP attempt: ``status`` 0 means no answer (refused, reset, timed out)."""

    op: str
    status: int
    started: float  # time.monotonic()
    seconds: float
    retry_after: bool = False
    error: str = ""
    upstream: str = ""  # the replica that answered (nginx's X-Polyshop-Upstream)


@dataclass
class Acknowledged:
    """Every write the API acknowledged (2xx), and the ones whose outcome is unknown."""

    orders: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> order id
    order_unknown: set[str] = field(default_factory=set)
    order_conflicts: list[str] = field(default_factory=list)  # a key answered 2 order ids
    patches: dict[int, int] = field(default_factory=dict)  # product id -> highest version
    images: dict[int, int] = field(default_factory=dict)  # image id -> product id
    uploads_unknown: int = 0


class Workload:
    """Concurrent mixed requests through the load balancer."""

    def __init__(
        self,
        deployment: Deployment,
        mix: Mapping[str, float],
        *,
        seed: int = 1,
        order_retries: int = 4,
        timeout_s: float = 10.0,
    ) -> None:
        self.d = deployment
        self.ops = list(mix)
        self.weights = [mix[o] for o in self.ops]
        self.rng = random.Random(seed)
        self.order_retries = order_retries
        self.samples: list[Sample] = []
        self.acks = Acknowledged()
        self._order_bodies: dict[str, dict[str, Any]] = {}
        self._client = httpx.AsyncClient(
            base_url=deployment.base_url,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self._admin = {"Authorization": f"Bearer {deployment.admin_key}"}
        self._customer = {"Authorization": f"Bearer {deployment.customer_key}"}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Workload:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- driving -----------------------------------------------------------------

    async def run(self, seconds: float, concurrency: int) -> None:
        """Keep ``concurrency`` requests in flight for ``seconds``."""
        deadline = time.monotonic() + seconds

        async def user() -> None:
            while time.monotonic() < deadline:
                op = self.rng.choices(self.ops, self.weights)[0]
                await getattr(self, f"_{op}")()

        await asyncio.gather(*(user() for _ in range(concurrency)))

    async def run_until(self, stop: asyncio.Event, concurrency: int) -> None:
        """Keep ``concurrency`` requests in flight until ``stop`` is set."""

        async def user() -> None:
            while not stop.is_set():
                op = self.rng.choices(self.ops, self.weights)[0]
                await getattr(self, f"_{op}")()

        await asyncio.gather(*(user() for _ in range(concurrency)))

    async def one_of_each(self) -> None:
        """One request of every operation in the mix, in turn (a fault window then
        holds each kind of request, however short it is)."""
        for op in self.ops:
            await getattr(self, f"_{op}")()

    async def _request(
        self, op: str, method: str, url: str, **kwargs: Any
    ) -> tuple[Sample, httpx.Response | None]:
        started = time.monotonic()
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            sample = Sample(op, 0, started, time.monotonic() - started, error=type(exc).__name__)
            self.samples.append(sample)
            return sample, None
        sample = Sample(
            op,
            response.status_code,
            started,
            time.monotonic() - started,
            retry_after="retry-after" in response.headers,
            upstream=response.headers.get("x-polyshop-upstream", ""),
        )
        self.samples.append(sample)
        return sample, response

    def _product(self) -> int:
        return self.rng.choice(self.d.product_ids)

    async def _get(self) -> None:
        await self._request("get", "GET", f"/products/{self._product()}")

    async def _list(self) -> None:
        await self._request("list", "GET", "/products", params={"limit": 20})

    async def _search(self) -> None:
        q = self.rng.choice(SEARCH_WORDS)
        await self._request("search", "GET", "/search/products", params={"q": q})

    async def _patch(self) -> None:
        product_id = self._product()
        price = f"{self.rng.randint(100, 99_999) / 100:.2f}"
        _, response = await self._request(
            "patch", "PATCH", f"/products/{product_id}", json={"price": price}, headers=self._admin
        )
        if response is not None and response.status_code == 200:
            version = int(response.json()["version"])
            self.acks.patches[product_id] = max(version, self.acks.patches.get(product_id, 0))

    async def _upload(self) -> None:
        product_id = self._product()
        files = {"file": ("mixed.png", png(self.rng), "image/png")}
        sample, response = await self._request(
            "upload", "POST", f"/products/{product_id}/images", files=files, headers=self._admin
        )
        if response is not None and response.status_code in (200, 201):
            self.acks.images[int(response.json()["id"])] = product_id
        elif sample.status in (0, 502, 504):
            self.acks.uploads_unknown += 1

    async def _order(self, key: str | None = None) -> None:
        """POST /orders; on no answer / 502 / 503 / 504 the client retries with the SAME
        Idempotency-Key, as a real client would."""
        key = key or uuid.uuid4().hex
        body = {"items": [{"product_id": self._product(), "quantity": 1}]}
        for attempt in range(self.order_retries + 1):
            _, response = await self._request(
                "order",
                "POST",
                "/orders",
                json=body,
                headers={**self._customer, "Idempotency-Key": key},
            )
            status = 0 if response is None else response.status_code
            if response is not None and status in (200, 201):
                self._ack_order(key, int(response.json()["id"]))
                return
            if status not in RETRYABLE and status != 409:
                return  # a definitive refusal: nothing was written
            if attempt < self.order_retries:
                await asyncio.sleep(0.3 * (attempt + 1))
        self.acks.order_unknown.add(key)
        self._order_bodies[key] = body

    def _ack_order(self, key: str, order_id: int) -> None:
        earlier = self.acks.orders.get(key)
        if earlier is not None and earlier != order_id:
            self.acks.order_conflicts.append(f"{key}: {earlier} then {order_id}")
        self.acks.orders[key] = order_id
        self.acks.order_unknown.discard(key)

    async def resolve_unknown_orders(self) -> None:
        """After recovery: retry every order whose outcome the client never learnt, with
        its original key and body (the API must answer the one order, or make it now)."""
        for key in sorted(self.acks.order_unknown):
            body = self._order_bodies[key]
            _, response = await self._request(
                "order",
                "POST",
                "/orders",
                json=body,
                headers={**self._customer, "Idempotency-Key": key},
            )
            if response is not None and response.status_code in (200, 201):
                self._ack_order(key, int(response.json()["id"]))


# --- reporting -----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarize(samples: list[Sample], seconds: float) -> dict[str, dict[str, float]]:
    """Per operation: requests, throughput, p50/p99 (ms), errors (non-2xx or no answer)."""
    table: dict[str, dict[str, float]] = {}
    for op in sorted({s.op for s in samples}):
        mine = [s for s in samples if s.op == op]
        ok = [s.seconds * 1000 for s in mine if 200 <= s.status < 300]
        table[op] = {
            "requests": len(mine),
            "per_s": len(mine) / seconds,
            "p50_ms": percentile(ok, 0.50),
            "p99_ms": percentile(ok, 0.99),
            "errors": sum(1 for s in mine if not 200 <= s.status < 300),
        }
    return table
