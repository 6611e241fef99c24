"""Fixtures of the fault-injection suite.

The suite stops and kills services, so it never touches the shared dev stack: it starts a
PRIVATE dev stack instance (``.devstack/instances/fault``, every port + 6000, OpenSearch
with a 1 GB heap), deploys two API replicas behind nginx and the worker against a fresh
schema, and stops that instance (by supervisord's pid) at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

import devstack
from bench.mixed_workload import Deployment, deploy
from tests.integration.fault.ledger import RECOVERIES, Ledger

INSTANCE = "fault"
# +6000 puts every service port above the kernel's ephemeral range (32768-60999), so a
# client socket cannot take a killed service's port before it restarts. (+100 would not
# do at all: OpenSearch's HTTP port would be the default instance's transport port.)
PORT_OFFSET = int(os.environ.get("POLYSHOP_FAULT_PORT_OFFSET", "6000"))
KEEP = os.environ.get("POLYSHOP_FAULT_KEEP_STACK", "") == "1"  # debugging: leave it up


@pytest.fixture(scope="package")
def lb() -> Iterator[Deployment]:
    """A private instance with 2 API replicas behind nginx and the worker."""
    layout = devstack.instance(INSTANCE, PORT_OFFSET, opensearch_heap="1g")
    try:
        yield deploy(layout, replicas=2, products=30)
    finally:
        if not KEEP:
            devstack.down(progress=False, layout=layout)
            # the next run starts from an empty instance (initdb takes seconds)
            shutil.rmtree(layout.root / "data", ignore_errors=True)


@pytest.fixture(scope="package")
def ledger() -> Ledger:
    return Ledger()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RECOVERIES:
        return
    terminalreporter.section("fault injection: time to recover (from the restart command)")
    terminalreporter.write_line(
        f"{'fault':<16} {'service back':>12} {'API recovered':>13} {'converged':>9}"
        "  answers during the fault (non-2xx)"
    )
    for r in RECOVERIES:
        terminalreporter.write_line(
            f"{r.fault:<16} {r.service_back_s:>11.1f}s {r.api_recovered_s:>12.1f}s"
            f" {r.converged_s:>8.1f}s  {r.during}"
        )
