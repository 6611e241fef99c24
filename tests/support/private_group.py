"""The xdist scheduler of `make test` (`--dist loadgroup`): xdist's loadgroup, with every
test of the private instance's directories in one group, so one worker runs them in
turn (they share one instance and deploy an app on it in turn), and every other test a
unit of its own. Largest group first: the private group starts at once, on the first
worker, and boots the instance while the other workers run the rest.

By directory, not by `xdist_group` marker: with pytest 9.2, xdist 3.8 appends the group
to `item._nodeid`, which pytest no longer reads, so the markers group nothing. The
scheduler runs in the controller, which sees node ids only.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling

GROUP = "private_stack"
DIRS = ("tests/integration/fault/", "tests/integration/soak/")


def in_private_group(nodeid: str) -> bool:
    return nodeid.startswith(DIRS)


class PrivateStackScheduling(LoadGroupScheduling):  # type: ignore[misc]  # xdist: untyped
    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)

    def _split_scope(self, nodeid: str) -> str:
        return GROUP if in_private_group(nodeid) else super()._split_scope(nodeid)
