"""bench/cpu.py: CPU seconds of this process (and of the dev stack's services) from /proc."""

from __future__ import annotations

import hashlib
import sys

import pytest

from bench.cpu import CpuMeter, spent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_the_bench_process_cpu_is_counted() -> None:
    meter = CpuMeter()
    before = meter.snapshot()
    data = b"x" * 1_000_000
    for _ in range(400):  # ~0.2 s of CPU
        hashlib.sha256(data).digest()
    used = spent(before, meter.snapshot())
    assert used["bench"] > 0.05
    assert set(used) == {"bench", *meter.pids}
    assert all(seconds >= 0 for seconds in used.values())
