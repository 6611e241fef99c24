"""Fixtures of the fault-injection suite.

The suite stops and kills services, so it never touches the shared dev stack: on the
PRIVATE dev stack instance (``private_stack`` in tests/integration/conftest.py:
``.devstack/instances/fault``, every port + 6000) it deploys two API replicas behind
nginx and the worker against a fresh schema, and stops them at the end (the soak runs
beside it on an instance of its own, ``soak_stack``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import devstack
from bench.mixed_workload import Deployment, deploy
from tests.integration.fault.ledger import Ledger


@pytest.fixture(scope="package")
def lb(private_stack: devstack.Layout) -> Iterator[Deployment]:
    """The private instance with 2 API replicas behind nginx and the worker."""
    try:
        yield deploy(private_stack, replicas=2, products=30)
    finally:
        devstack.stop_app(progress=False, layout=private_stack)


@pytest.fixture(scope="package")
def ledger() -> Ledger:
    return Ledger()
