"""Shared by every test: tests under tests/integration/ are marked `integration` (their
fixtures, which start the app and reach the real services, are in
tests/integration/conftest.py); `pytest -m "not integration"` or `pytest tests/unit`
needs no service and imports no part of the app it does not test.

`make test` runs the tests in pytest-xdist workers (docs/developing.md, "CI time
budget"). Every integration test of the session's dev stack holds the stack's lock
shared, a `stack_exclusive` test (it stops, kills or pauses a service) holds it alone
(tests/support/stack_lock.py); the tests of each private instance (the fixtures
`private_stack`, the fault suite's, and `soak_stack`, the soak's) are one group of the
xdist scheduler (tests/support/private_group.py), so one worker runs them in turn, beside
the others."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.support import summary

ROOT = Path(__file__).parent.parent
INTEGRATION_DIR = Path(__file__).parent / "integration"


def _private_fixture(item: pytest.Item) -> str | None:
    """The private instance's fixture a test uses (tests/integration/conftest.py), if any."""
    from tests.support.private_group import FIXTURES

    return next((f for f in getattr(item, "fixturenames", ()) if f in FIXTURES), None)


def _private_dir_fixture(item: pytest.Item) -> str | None:
    """The fixture of the private instance whose directory holds the test, if any."""
    from tests.support.private_group import FIXTURE_OF_DIR, group_of

    group = group_of(Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix())
    return None if group is None else FIXTURE_OF_DIR[group]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
        if (used := _private_fixture(item)) != (expected := _private_dir_fixture(item)):
            # the scheduler groups each private instance's tests by their directory
            raise pytest.UsageError(
                f"{item.nodeid}: uses {used or 'no private instance'}, its directory's is"
                f" {expected or 'none'} (tests/support/private_group.py: FIXTURE_OF_DIR)"
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
    if item.get_closest_marker("integration") is None or _private_fixture(item):
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
