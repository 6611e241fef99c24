"""Lines a test adds to the terminal summary (the fault suite's recovery times, the
soak's per-minute table). They travel with the test's report, so they are printed by
the process that prints the summary also when the tests ran in pytest-xdist workers
(a module-level list in a worker would never reach it); tests/conftest.py prints them."""

from __future__ import annotations

import pytest

KEY = "terminal-summary"


def add(node: pytest.Item, section: str, header: str, line: str) -> None:
    """Print `line` (may span lines) under `section`, after `header` (once per section)."""
    node.user_properties.append((KEY, (section, header, line)))


def sections(reports: list[pytest.TestReport]) -> dict[str, tuple[str, list[str]]]:
    """section -> (header, lines), in the order the reports came, once per test."""
    found: dict[str, tuple[str, list[str]]] = {}
    seen: set[tuple[str, str, str, str]] = set()
    for report in reports:
        for key, value in report.user_properties:
            if key != KEY or not isinstance(value, (tuple, list)):
                continue
            section, header, line = (str(v) for v in value)
            if (report.nodeid, section, header, line) in seen:
                continue  # the same properties ride on the setup, call and teardown reports
            seen.add((report.nodeid, section, header, line))
            found.setdefault(section, (header, []))[1].append(line)
    return found
