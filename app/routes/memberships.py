"""Mounts memberships/routes.py with the app's auth, transaction and settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg

from app.auth import CustomerDep
from app.deps import SettingsDep
from app.problems import PROBLEM_JSON
from app.transaction import TransactionDep, read_connection_dependency
from memberships.routes import build_router


async def _customer_id(principal: CustomerDep) -> int:
    assert principal.customer_id is not None  # a customer key always names its customer
    return principal.customer_id


async def _transaction(tx: TransactionDep) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The request transaction's connection (app.transaction: commit, 503, effects)."""
    yield await tx.connection()


async def _reminder_days(settings: SettingsDep) -> float:
    return settings.membership_reminder_days


_PROBLEM = {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}

router = build_router(
    customer_id=_customer_id,
    transaction=_transaction,
    read_connection=read_connection_dependency,
    reminder_days=_reminder_days,
    responses={
        404: {"description": "no such membership of the caller", **_PROBLEM},
        409: {"description": "an active membership of that plan exists", **_PROBLEM},
    },
)
