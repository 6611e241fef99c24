"""Shared by every test: tests under tests/integration/ are marked `integration` (their
fixtures, which start the app and reach the real services, are in
tests/integration/conftest.py); `pytest -m "not integration"` or `pytest tests/unit`
needs no service and imports no part of the app it does not test."""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
