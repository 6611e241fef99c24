"""Shared by every test: tests under tests/integration/ are marked `integration` (their
fixtures, which start the app and reach the real services, are in
tests/integration/conftest.py); `pytest -m "not integration"` or `pytest tests/unit`
needs no service and imports no part of the app it does not test.

`make test` runs the tests in pytest-xdist workers (docs/developing.md, "CI time
budget"). Every integration test of the session's dev stack holds the stack's lock
shared, a `stack_exclusive` test (it stops, kills or pauses a service) holds it alone
(tests/support/stack_lock.py); the tests of the private instance (the fixture
`private_stack`: the fault suite, then the soak) are one group of the xdist scheduler
(tests/support/private_group.py), so one worker runs them in turn, beside the others."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.support import summary

ROOT = Path(__file__).parent.parent
INTEGRATION_DIR = Path(__file__).parent / "integration"
PRIVATE_STACK = "private_stack"  # the fixture (tests/integration/conftest.py)


def _on_private_stack(item: pytest.Item) -> bool:
    return PRIVATE_STACK in getattr(item, "fixturenames", ())


def _in_private_dirs(item: pytest.Item) -> bool:
    from tests.support.private_group import DIRS

    path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
    return path.startswith(DIRS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
        if _on_private_stack(item) != _in_private_dirs(item):
            # the scheduler groups the private instance's tests by their directory
            raise pytest.UsageError(
                f"{item.nodeid}: a test uses {PRIVATE_STACK} if and only if it is in"
                " tests/support/private_group.py: DIRS"
            )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> object | None:
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own
    from tests.support.private_group import PrivateStackScheduling

    return PrivateStackScheduling(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Setup, call and teardown of an integration test of the session's stack inside the
    stack's lock (session fixtures are set up and torn down inside it too)."""
    if item.get_closest_marker("integration") is None or _on_private_stack(item):
        return (yield)
    import devstack
    from tests.support.stack_lock import holding

    exclusive = item.get_closest_marker("stack_exclusive") is not None
    with holding(devstack.LAYOUT.run, exclusive=exclusive):
        return (yield)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = [r for rs in terminalreporter.stats.values() for r in rs if hasattr(r, "nodeid")]
    reports = [r for r in reports if isinstance(r, pytest.TestReport)]
    for section, (header, lines) in summary.sections(reports).items():
        terminalreporter.section(section)
        for text in ([header] if header else []) + lines:
            for line in text.splitlines():
                terminalreporter.write_line(line)
