"""bench/cpu.py: CPU seconds of this process (and of the dev stack's services) from /proc."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

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


def test_a_watched_process_tree_is_counted_with_its_children() -> None:
    # a parent that only waits, and a child that burns ~0.3 s of CPU and then stays alive
    busy = (
        "import hashlib, time\n"
        "for _ in range(600): hashlib.sha256(b'x' * 1_000_000)\n"
        "time.sleep(60)"
    )
    spawn = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])"
    parent = subprocess.Popen([sys.executable, "-c", spawn], start_new_session=True)
    try:
        meter = CpuMeter().watch("server", parent.pid)
        before = meter.snapshot()
        used = 0.0
        deadline = time.monotonic() + 30
        while used < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
            used = spent(before, meter.snapshot())["server"]
        assert used >= 0.2  # the child's CPU, counted under its parent's name
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
