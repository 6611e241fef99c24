"""The dev stack's test lock (tests/support/stack_lock.py): tests share it, an exclusive
test has it alone, and once an exclusive test waits no new test starts before it. Each
thread opens the lock files itself, so the threads contend as xdist workers do (flock
locks belong to an open file description, not to a process)."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from tests.support.stack_lock import holding

WAIT_S = 10.0  # a bound for a thread that should get through (never a timing assert)


class Holder(threading.Thread):
    """Holds the lock from `start()` until `release()`; `entered` once it has it."""

    def __init__(self, run_dir: Path, *, exclusive: bool) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.exclusive = run_dir, exclusive
        self.entered, self._release = threading.Event(), threading.Event()

    def run(self) -> None:
        with holding(self.run_dir, exclusive=self.exclusive):
            self.entered.set()
            self._release.wait(WAIT_S * 3)

    def release(self) -> None:
        self._release.set()
        self.join(WAIT_S)


def _taken(path: Path) -> bool:
    """True while another description holds `path` (probed without waiting)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _until_taken(path: Path) -> None:
    pause = threading.Event()
    for _ in range(1000):
        if _taken(path):
            return
        pause.wait(0.01)
    raise AssertionError(f"nobody took {path.name}")


def test_tests_share_the_stack(tmp_path: Path) -> None:
    a, b = Holder(tmp_path, exclusive=False), Holder(tmp_path, exclusive=False)
    a.start()
    b.start()
    assert a.entered.wait(WAIT_S) and b.entered.wait(WAIT_S)
    a.release()
    b.release()


def test_an_exclusive_test_waits_for_the_running_ones_and_goes_before_new_ones(
    tmp_path: Path,
) -> None:
    running = Holder(tmp_path, exclusive=False)
    running.start()
    assert running.entered.wait(WAIT_S)
    exclusive = Holder(tmp_path, exclusive=True)
    exclusive.start()
    _until_taken(tmp_path / "tests-turnstile.lock")  # it waits, holding the turnstile
    later = Holder(tmp_path, exclusive=False)
    later.start()
    assert not exclusive.entered.is_set()
    running.release()
    assert exclusive.entered.wait(WAIT_S)
    assert not later.entered.is_set()  # queued behind the exclusive test
    exclusive.release()
    assert later.entered.wait(WAIT_S)
    later.release()
