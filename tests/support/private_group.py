"""The xdist scheduler of `make test` (`--dist loadgroup`): xdist's loadgroup, with the
tests of each private instance's directory in one group, so one worker runs them in
turn (they share the instance and deploy an app on it), and every other test a unit of
its own. Largest group first: the fault suite's group starts at once on one worker, the
soak (a unit of its size) on another, and each boots its instance while the other
workers run the rest.

By directory, not by `xdist_group` marker: with pytest 9.2, xdist 3.8 appends the group
to `item._nodeid`, which pytest no longer reads, so the markers group nothing. The
scheduler runs in the controller, which sees node ids only.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling

# directory -> the fixture of its private instance (tests/integration/conftest.py)
FIXTURE_OF_DIR = {
    "tests/integration/fault/": "private_stack",
    "tests/integration/soak/": "soak_stack",
}
DIRS = tuple(FIXTURE_OF_DIR)
FIXTURES = frozenset(FIXTURE_OF_DIR.values())


def group_of(nodeid: str) -> str | None:
    """The private instance's group of a test (its directory), or None."""
    return next((d for d in DIRS if nodeid.startswith(d)), None)


class PrivateStackScheduling(LoadGroupScheduling):  # type: ignore[misc]  # xdist: untyped
    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid) or super()._split_scope(nodeid)
