"""Routers of the feature areas, mounted by `app.main.create_app`. Add yours here."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes import analytics, etl, images, memberships, orders, products, search

ROUTERS: list[APIRouter] = [
    products.router,
    products.bench_router,
    images.router,
    orders.router,
    search.router,
    analytics.router,
    etl.router,
    memberships.router,
]
