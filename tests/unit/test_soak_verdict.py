"""The soak's verdict (tests/support/soak.py): medians of the first and the last window
after the warm-up, so one peak does not fail a run and a steady climb does."""

from __future__ import annotations

from tests.support.soak import MIB, Point, judge, windows


def series(memory: list[float], connections: list[int] | None = None) -> list[Point]:
    conns = connections or [10] * len(memory)
    return [
        Point(at=10.0 * i, memory={"worker": int(m * MIB)}, postgres_connections=c,
              redis_clients=5, backlog=0)
        for i, (m, c) in enumerate(zip(memory, conns, strict=True))
    ]  # fmt: skip


def test_a_flat_run_with_one_peak_passes() -> None:
    points = series([50, 80, 100, 101, 160, 100, 102, 101, 100, 103, 101, 102])
    verdict = judge(windows(points, 20, 30), max_memory_growth=0.10, connection_slack=2)
    assert verdict.problems == []
    assert abs(verdict.memory_growth["worker"]) < 0.03


def test_a_steady_climb_fails_and_names_the_program() -> None:
    points = series([100 + 5 * i for i in range(12)])
    verdict = judge(windows(points, 20, 30), max_memory_growth=0.10, connection_slack=2)
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith("worker: memory")


def test_connections_that_keep_rising_fail() -> None:
    points = series([100] * 12, connections=[10 + i for i in range(12)])
    verdict = judge(windows(points, 20, 30), max_memory_growth=0.10, connection_slack=2)
    assert verdict.problems == ["postgres_connections: 13 -> 20 (not flat)"]


def test_no_samples_after_the_warm_up_is_a_failure() -> None:
    verdict = judge(windows(series([100, 100]), 60, 30), max_memory_growth=0.1, connection_slack=2)
    assert verdict.problems == ["no samples after the warm-up"]


def test_a_small_program_moving_less_than_the_floor_passes() -> None:
    points = series([3.0, 3.0, 3.0, 3.0, 3.0, 3.7, 3.7, 3.7, 3.7, 3.7, 3.7, 3.7])
    verdict = judge(windows(points, 20, 30), max_memory_growth=0.10, connection_slack=2)
    assert verdict.problems == []
    assert verdict.memory_growth["worker"] > 0.2  # reported, not failed
