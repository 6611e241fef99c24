"""LoopLag (storage/redis_errors.py): a stall of the event loop is measured, and a timeout
that the stall explains is told from one that Redis took.

The quiet windows are real time on a shared machine: a window in which the OS took the
CPU away from this process for a while is a real stall, and LoopLag rightly counts it. So
each quiet property is asked of the best of a few windows: a machine's hiccup rarely hits
all of them, while a LoopLag that counted an idle wait as a stall fails every one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from storage.redis_errors import LagMark, LoopLag

WINDOWS = 3


async def quietest(lag: LoopLag, window: Callable[[], Awaitable[LagMark]]) -> LagMark:
    """The mark of the window (of WINDOWS tries) with the least lag since it."""
    marks = []
    for _ in range(WINDOWS):
        mark = await window()
        marks.append((lag.since(mark), mark))
        if marks[-1][0] == 0.0:
            break
    return min(marks, key=lambda pair: pair[0])[1]


async def test_a_blocked_loop_explains_a_timeout_and_an_idle_wait_does_not() -> None:
    lag = LoopLag(interval_s=0.01, min_stall_s=0.05)  # a loaded machine's jitter is no stall
    async with lag.running():
        await asyncio.sleep(0.05)  # the ticker runs
        mark = lag.mark()
        time.sleep(0.3)  # noqa: ASYNC251  (the loop is blocked on purpose)
        # measured at once, before the ticker ran again: the stall in progress counts
        assert 0.25 <= lag.since(mark) <= 1.0  # more only if the machine is very busy
        assert lag.explains(mark, timeout_s=0.25)

        async def idle_wait() -> LagMark:
            quiet = lag.mark()
            await asyncio.sleep(0.25)  # a wait the loop spent running: Redis' own time
            return quiet

        quiet = await quietest(lag, idle_wait)
        assert lag.since(quiet) < 0.1
        assert not lag.explains(quiet, timeout_s=0.25)


async def test_a_stall_before_the_mark_does_not_count() -> None:
    lag = LoopLag(interval_s=0.01, min_stall_s=0.05)
    async with lag.running():

        async def after_a_stall() -> LagMark:
            await asyncio.sleep(0.05)
            time.sleep(0.2)  # noqa: ASYNC251
            await asyncio.sleep(0.05)  # the ticker recorded the stall
            mark = lag.mark()
            await asyncio.sleep(0.05)
            return mark

        mark = await quietest(lag, after_a_stall)
        assert lag.since(mark) < 0.05


def test_not_running_knows_no_lag() -> None:
    lag = LoopLag()
    mark = lag.mark()
    time.sleep(0.05)
    assert lag.since(mark) == 0.0
    assert not lag.explains(mark, timeout_s=0.01)
