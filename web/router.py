"""Every web route in one router, for the app to include (`app/routes/registry.py`)."""

from __future__ import annotations

from fastapi import APIRouter

from web import media, static
from web.routes import (
    admin_ops,
    admin_products,
    console,
    memberships,
    signin,
    storefront,
    warehouse,
)

router = APIRouter(include_in_schema=False)
for _sub in (
    static.router,
    media.router,
    signin.router,
    storefront.router,
    memberships.router,
    warehouse.router,
    admin_products.router,
    admin_ops.router,
    console.router,
):
    router.include_router(_sub)
