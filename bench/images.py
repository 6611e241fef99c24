"""Image upload throughput: `POST /products/{id}/images` with ~1 MB JPEGs against a plain
minio-py `put_object` of the same bytes, in the same run, once with renditions made inline
and once with them deferred to the worker (each image to a product of its own, like a
catalogue import), and deferred again with every image to one product (like a gallery:
those uploads serialize on the product row, whose version each image bumps), plus where
the upload time goes (receive, decode, encode, resize, store, and the puts within store),
and the CPU each scenario costs per upload in this process and in the dev stack's MinIO,
Postgres and Redis (bench/cpu.py), since on 2 shared cores the ratio follows the CPU.

    uv run python -m bench.images [--images 24] [--rounds 3] [--concurrency 4] [--served 1 2]

The app runs in process (ASGI) on a schema and a bucket of its own, both removed
afterwards. With `--served N...` the deferred scenario is run again against the API as
deployed (`polyshop serve --workers N` in its own processes, over HTTP; bench/served.py),
with the server's CPU per upload. Every round starts from an empty bucket and table, so
content-addressed dedup never turns an upload into a no-op. The scenarios alternate
round by round so noise from the shared machine hits all of them. Sizes are modest on
purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from asgi_lifespan import LifespanManager
from minio import Minio
from PIL import Image

from app.main import create_app
from app.settings import Settings, get_settings
from app.stores import Stores, open_stores
from bench.cpu import CpuMeter, spent
from bench.isolation import bench_env, bench_settings, drop_bench_state
from bench.served import served_api
from images.metrics import IMAGE_UPLOAD_STAGE
from images.renditions import make_pending
from storage import api_keys, migrate
from storage.blobs import empty_bucket, ensure_bucket

STAGES = ("receive", "decode", "encode", "resize", "store", "put")


@dataclass
class Result:
    name: str
    uploads: int = 0
    seconds: float = 0.0
    megabytes: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds by process

    @property
    def rate(self) -> float:
        return self.uploads / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<34} {self.rate:7.1f} uploads/s {self.megabytes / self.seconds:6.1f} MB/s"
            f"   p50 {self.pct(0.5):7.1f} ms   p99 {self.pct(0.99):7.1f} ms"
            f"   ({self.uploads} uploads)"
        )

    def cpu_line(self) -> str:
        per = {k: v / self.uploads * 1000 for k, v in self.cpu_s.items()}
        parts = "  ".join(f"{k} {v:5.2f}" for k, v in per.items())
        return f"{self.name:<34} {parts}   total {sum(per.values()):5.2f} core-ms/upload"


def make_jpegs(n: int, seed: int = 7) -> list[bytes]:
    """n distinct photos-like JPEGs of about 1 MB (noise compresses like a busy photo)."""
    rng = random.Random(seed)
    base = Image.merge(
        "RGB", [Image.effect_noise((1600, 1200), 40 + 10 * c).convert("L") for c in range(3)]
    )
    out: list[bytes] = []
    for i in range(n):
        image = base.copy()
        x, y = rng.randrange(1400), rng.randrange(1000)
        image.paste((rng.randrange(256), i % 256, 90), (x, y, x + 200, y + 200))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=72)
        out.append(buf.getvalue())
    return out


def _stage_totals() -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) per stage from the in-process histogram."""
    totals: dict[str, tuple[float, float]] = {}
    for metric in IMAGE_UPLOAD_STAGE.collect():
        sums = {s.labels["stage"]: s.value for s in metric.samples if s.name.endswith("_sum")}
        counts = {s.labels["stage"]: s.value for s in metric.samples if s.name.endswith("_count")}
        for stage in sums:
            totals[stage] = (sums[stage], counts.get(stage, 0.0))
    return totals


Upload = Callable[[int, bytes], Awaitable[None]]


def upload_to(
    client: httpx.AsyncClient, headers: dict[str, str], product_of: Callable[[int], int]
) -> Upload:
    """`POST /products/{product_of(i)}/images` of image i, which must answer 201."""

    async def upload(i: int, data: bytes) -> None:
        response = await client.post(
            f"/products/{product_of(i)}/images",
            files={"file": (f"{i}.jpg", data, "image/jpeg")},
            headers=headers,
        )
        if response.status_code != 201:
            raise RuntimeError(f"{response.status_code}: {response.text}")

    return upload


def raw_put_to(blobs: Minio, bucket: str) -> Upload:
    """The baseline: a plain minio-py `put_object` of the same bytes, in a thread."""

    async def raw_put(i: int, data: bytes) -> None:
        await asyncio.to_thread(
            blobs.put_object,
            bucket,
            f"raw/{uuid.uuid4().hex}.jpg",
            io.BytesIO(data),
            len(data),
            content_type="image/jpeg",
        )

    return raw_put


async def _run(
    name: str,
    images: list[bytes],
    concurrency: int,
    one: Upload,
    meter: CpuMeter | None = None,
) -> Result:
    result = Result(name)
    meter = meter or CpuMeter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(images)):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            await one(i, images[i])
            result.latencies.append(time.perf_counter() - started)

    cpu_before = meter.snapshot()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.cpu_s = spent(cpu_before, meter.snapshot())
    result.uploads = len(images)
    result.megabytes = sum(len(b) for b in images) / 1e6
    return result


async def _reset(stores: Stores) -> None:
    """Empty the bucket and the image table (not timed)."""
    async with stores.pg.connection() as conn:
        await conn.execute("TRUNCATE product_images")

    await asyncio.to_thread(empty_bucket, stores.blobs, stores.settings.s3_bucket)


def _accumulate(
    into: dict[str, tuple[float, float]],
    before: dict[str, tuple[float, float]],
    after: dict[str, tuple[float, float]],
) -> None:
    for stage, (s1, c1) in after.items():
        s0, c0 = before.get(stage, (0.0, 0.0))
        t, c = into.get(stage, (0.0, 0.0))
        into[stage] = (t + s1 - s0, c + c1 - c0)


def _add(total: Result, part: Result) -> None:
    total.uploads += part.uploads
    total.seconds += part.seconds
    total.megabytes += part.megabytes
    total.latencies += part.latencies
    for name, seconds in part.cpu_s.items():
        total.cpu_s[name] = total.cpu_s.get(name, 0.0) + seconds


async def main(n: int, rounds: int, concurrency: int, served: list[int]) -> None:
    settings = bench_settings(get_settings(), "images", database_pool_max=concurrency + 4)
    await asyncio.to_thread(migrate.upgrade, settings.database_url, settings.database_schema)
    images = make_jpegs(n)
    print(f"{n} JPEGs, mean {sum(map(len, images)) / n / 1e6:.2f} MB, 1600x1200")
    try:
        app = create_app(settings)
        async with LifespanManager(app):
            stores: Stores = app.state.stores
            await asyncio.to_thread(ensure_bucket, stores.blobs, settings.s3_bucket)
            async with stores.pg.connection() as conn:
                key = await api_keys.create_key(
                    conn, pepper=settings.api_key_pepper.get_secret_value(), role="admin"
                )
                # one product per image (a catalogue import: uploads to different products
                # are independent) and one product for all (a gallery: they serialize on
                # the product row, whose version each image bumps)
                cur = await conn.execute(
                    "INSERT INTO products (sku, name, price_minor)"
                    " SELECT 'BENCH-' || g, 'Bench ' || g, 1 FROM generate_series(0, %s) g"
                    " RETURNING id",
                    (n,),
                )
                product_ids: list[int] = [int(r["id"]) for r in await cur.fetchall()]
                shared_product = product_ids.pop()
            headers = {"Authorization": f"Bearer {key}"}
            # a second app on the same schema and bucket: renditions deferred to the worker
            deferred_app = create_app(settings.model_copy(update={"image_renditions": "worker"}))
            async with (
                LifespanManager(deferred_app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench"
                ) as client,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=deferred_app), base_url="http://bench"
                ) as deferred_client,
            ):

                def each_own(i: int) -> int:
                    return product_ids[i]

                endpoint = upload_to(client, headers, each_own)
                deferred_endpoint = upload_to(deferred_client, headers, each_own)
                gallery_endpoint = upload_to(deferred_client, headers, lambda _: shared_product)
                raw_put = raw_put_to(stores.blobs, settings.s3_bucket)

                await _run("warm-up", images[: concurrency * 2], concurrency, endpoint)
                await _reset(stores)
                raw = Result("raw minio put_object")
                api = Result("POST /images (renditions inline)")
                deferred = Result("POST /images (renditions deferred)")
                gallery = Result("same, all to one product")
                worker_s = 0.0
                stages: dict[str, dict[str, tuple[float, float]]] = {}
                for _ in range(rounds):
                    _add(raw, await _run(raw.name, images, concurrency, raw_put))
                    await _reset(stores)
                    for total, one in (
                        (api, endpoint),
                        (deferred, deferred_endpoint),
                        (gallery, gallery_endpoint),
                    ):
                        before = _stage_totals()
                        _add(total, await _run(total.name, images, concurrency, one))
                        _accumulate(stages.setdefault(total.name, {}), before, _stage_totals())
                        if total is deferred:  # the worker's share, measured on its own
                            started = time.perf_counter()
                            while await make_pending(stores, limit=len(images)):
                                pass
                            worker_s += time.perf_counter() - started
                        await _reset(stores)
        print(f"concurrency {concurrency}, {rounds} rounds, in-process ASGI app")
        for result in (raw, api, deferred, gallery):
            print(result.line())
        print(f"throughput ratio inline / raw put:   {api.rate / raw.rate:.2f}x")
        print(f"throughput ratio deferred / raw put: {deferred.rate / raw.rate:.2f}x")
        print(f"  all to one product / raw put:      {gallery.rate / raw.rate:.2f}x")
        print(f"worker renditions (1 task, sequential): {deferred.uploads / worker_s:.1f} images/s")
        print("CPU per upload by process (bench = this process: client, app and minio-py):")
        for result in (raw, api, deferred, gallery):
            print("  " + result.cpu_line())
        print("where an upload's time goes (mean ms per upload, stage by stage):")
        for name, per_stage in stages.items():
            parts = [
                f"{s} {t / c * 1000:6.1f}"
                for s in STAGES
                for t, c in [per_stage.get(s, (0, 0))]
                if c
            ]
            print(f"  {name:<34} " + "  ".join(parts))
        for workers in served:
            await _served(settings, images, rounds, concurrency, workers, headers, product_ids)
    finally:
        await drop_bench_state(settings)


async def _served(
    settings: Settings,
    images: list[bytes],
    rounds: int,
    concurrency: int,
    workers: int,
    headers: dict[str, str],
    product_ids: list[int],
) -> None:
    """Deferred uploads to the API as deployed (`bench/served.py`: its own process(es),
    over HTTP from this process's httpx client) against the raw put, rounds alternating;
    the server's CPU is read from /proc for its whole process tree."""
    env = {
        **bench_env(settings),
        "POLYSHOP_IMAGE_RENDITIONS": "worker",
        "POLYSHOP_DATABASE_POOL_MAX": str(settings.database_pool_max),
    }
    with served_api(env, workers=workers) as api:
        async with (
            open_stores(settings) as stores,
            httpx.AsyncClient(base_url=api.base_url, timeout=60) as client,
        ):
            upload = upload_to(client, headers, lambda i: product_ids[i])
            raw_put = raw_put_to(stores.blobs, settings.s3_bucket)

            await _run("warm-up", images[: concurrency * 2], concurrency, upload)
            await _reset(stores)
            raw = Result("raw minio put_object")
            http = Result(f"POST /images over HTTP, {workers} worker(s)")
            for _ in range(rounds):
                _add(raw, await _run(raw.name, images, concurrency, raw_put))
                await _reset(stores)
                meter = CpuMeter().watch("server", api.pid)
                _add(http, await _run(http.name, images, concurrency, upload, meter))
                await _reset(stores)
    print(f"served API ({workers} uvicorn worker(s), renditions deferred), {rounds} rounds")
    print(raw.line())
    print(http.line())
    print(f"throughput ratio served / raw put:   {http.rate / raw.rate:.2f}x")
    print("  " + raw.cpu_line())
    print("  " + http.cpu_line())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--served",
        type=int,
        nargs="*",
        default=[],
        metavar="WORKERS",
        help="also run the API as deployed with this many uvicorn workers (e.g. --served 1 2)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.images, args.rounds, args.concurrency, args.served))
