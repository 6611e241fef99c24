"""MinIO's memory under the soak's object traffic, for longer (issue 14: did it level off?).

The soak uploads ~40 images a minute, each stored with two renditions, reads them, and
image GC deletes what is orphaned. This drives the same life cycle straight at the dev
stack's MinIO, `--rate` images a second in a bucket of its own: three PUTs (original and
two renditions), a GET, and for a share `--orphans` the DELETEs `--keep-s` later (the
GC; the others stay, as attached images do), and samples MinIO's memory (PSS, psutil)
every `--sample-s` seconds. At the default rate (6x the soak's) an hour of the soak's
traffic takes 10 minutes.

    uv run python -m bench.minio_memory --minutes 12

Prints each sample, then the medians of the first, middle and last windows after the
warm-up and their ratios to the first.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import time
from collections import deque

import psutil

import devstack
from app.settings import get_settings
from bench.isolation import bench_settings
from storage.blobs import create_minio, ensure_bucket, remove_bucket

MIB = 1024 * 1024


def minio_pid(layout: devstack.Layout) -> int:
    for s in devstack.status(layout=layout):
        if s.name == "minio" and s.state == "RUNNING" and s.pid:
            return s.pid
    raise SystemExit("minio is not running in this dev stack")


def pss(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_full_info().pss for p in [proc, *proc.children(recursive=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--rate", type=float, default=4.0, help="images per second")
    parser.add_argument("--orphans", type=float, default=0.2, help="share deleted later (GC)")
    parser.add_argument("--keep-s", type=float, default=60.0, help="age of an orphan's delete")
    parser.add_argument("--sample-s", type=float, default=20.0)
    parser.add_argument("--warmup-min", type=float, default=2.0)
    args = parser.parse_args()

    settings = bench_settings(get_settings(), "miniomem")
    client = create_minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )
    bucket = settings.s3_bucket
    ensure_bucket(client, bucket)
    pid = minio_pid(devstack.layout_from_env())
    rng = random.Random(14)
    live: deque[tuple[float, str]] = deque()
    samples: list[tuple[float, int]] = []
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.monotonic()
    next_sample = started
    n = 0
    try:
        while (now := time.monotonic()) - started < args.minutes * 60:
            if now >= next_sample:
                samples.append((now - started, pss(pid)))
                print(
                    f"{samples[-1][0]:6.0f} s  minio {samples[-1][1] / MIB:7.1f} MiB"
                    f"  images {n} (3 objects each), orphans waiting {len(live)}",
                    flush=True,
                )
                next_sample += args.sample_s
            image = f"products/{rng.randrange(40)}/{n:08d}"
            for suffix, size in (("orig.jpg", 100_000), ("800.webp", 30_000), ("200.webp", 6_000)):
                body = rng.randbytes(rng.randrange(size // 2, size * 3 // 2))
                client.put_object(
                    bucket,
                    f"{image}/{suffix}",
                    io.BytesIO(body),
                    len(body),
                    content_type="image/jpeg",
                )
            client.get_object(bucket, f"{image}/800.webp").read()
            if rng.random() < args.orphans:  # never attached: image GC deletes it later
                live.append((now, image))
            while live and now - live[0][0] > args.keep_s:
                gone = live.popleft()[1]
                for suffix in ("orig.jpg", "800.webp", "200.webp"):
                    client.remove_object(bucket, f"{gone}/{suffix}")
            n += 1
            time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
    finally:
        remove_bucket(client, bucket)
    report(samples, args.warmup_min * 60)


def report(samples: list[tuple[float, int]], warmup_s: float) -> None:
    measured = [s for s in samples if s[0] >= warmup_s]
    third = max(1, len(measured) // 3)
    windows = [measured[:third], measured[third : 2 * third], measured[-third:]]
    medians = [statistics.median(v for _, v in w) for w in windows]
    print(
        "\nminio PSS medians after the warm-up (first, middle, last third): "
        + " -> ".join(f"{m / MIB:.1f}" for m in medians)
        + f" MiB; last/first {medians[2] / medians[0]:.3f}x, last/middle"
        f" {medians[2] / medians[1]:.3f}x"
    )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
