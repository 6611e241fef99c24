"""Where a server process spends its time under load: py-spy (a sampling profiler from
PyPI, a dev dependency) attached to a running API replica, summarised by function.

`record(pid, seconds)` samples the process (idle samples left out) and returns py-spy's
collapsed stacks; `summarize` turns them into the functions with the largest share of
samples, inclusive (on the stack at all) and self (the frame running).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Profile:
    samples: int
    inclusive: list[tuple[str, float]]  # function, % of samples, largest first
    self_time: list[tuple[str, float]]


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (uv sync installs the dev group)")
    return found


def record_command(pid: int, seconds: float, output: Path, rate: int = 250) -> list[str]:
    return [
        py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", str(rate), "--format", "raw", "--output", str(output), "--nonblocking",
    ]  # fmt: skip


def start(pid: int, seconds: float) -> tuple[subprocess.Popen[bytes], Path]:
    """py-spy recording `pid` in the background; `finish` waits and reads the stacks."""
    output = Path(tempfile.mkdtemp(prefix="py-spy-")) / "stacks.txt"
    command = record_command(pid, seconds, output)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, output


def finish(
    proc: subprocess.Popen[bytes], output: Path, top: int = 15, keep: Path | None = None
) -> Profile:
    """The summary; with `keep`, py-spy's collapsed stacks are also written there (to
    read a stack beyond the summary, or to feed a flame-graph tool)."""
    proc.wait(timeout=120)
    text = output.read_text() if output.exists() else ""
    shutil.rmtree(output.parent, ignore_errors=True)
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(text)
    return summarize(text, top)


def _function(frame: str) -> str:
    """`name (path/to/file.py:123)` -> `name (file.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:]) if path else ""
    return f"{name} ({short})" if short else name


def summarize(collapsed: str, top: int = 15) -> Profile:
    """Collapsed stacks (`frame;frame;... count` per line) by function."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += count
        for function in set(frames):
            inclusive[function] += count
        leaf[frames[-1]] += count
    if not total:
        return Profile(0, [], [])

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, 100 * n / total) for f, n in counter.most_common(top)]

    return Profile(total, share(inclusive), share(leaf))


def table(profile: Profile) -> str:
    lines = [f"{profile.samples} samples (idle left out)", "", "| inclusive % | function |"]
    lines.append("|---:|---|")
    lines += [f"| {pct:.1f} | `{f}` |" for f, pct in profile.inclusive]
    lines += ["", "| self % | function |", "|---:|---|"]
    lines += [f"| {pct:.1f} | `{f}` |" for f, pct in profile.self_time]
    return "\n".join(lines)
