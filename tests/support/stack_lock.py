"""One dev stack, several test processes (`make test` runs pytest-xdist workers): a test
that stops, kills or pauses a service of the stack (marker `stack_exclusive`) runs while
no other test uses that stack, and every other test of the stack runs beside others.

A readers-writer lock on two files in the stack's run dir (`flock`, so the kernel frees
it when a worker dies): every test holds `stack.lock` shared, an exclusive test holds it
exclusively. Writers come first: an exclusive test takes `turnstile.lock` before it waits,
and a test takes the turnstile for a moment before its shared lock, so no new test starts
on the stack while an exclusive one is waiting (else two workers taking turns with shared
locks could keep it waiting for ever).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops its lock


@contextlib.contextmanager
def holding(run_dir: Path, *, exclusive: bool) -> Iterator[None]:
    """The stack whose run dir is `run_dir`, shared or exclusively, for the block."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        with _locked(run_dir / "tests-turnstile.lock", fcntl.LOCK_EX):
            stack.enter_context(
                _locked(run_dir / "tests-stack.lock", fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            )
        yield
