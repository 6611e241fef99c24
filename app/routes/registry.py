"""Routers of the feature areas, mounted by `app.main.create_app`. Add yours here."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes import analytics, etl, images, orders, products, search
from web.router import router as web_router

ROUTERS: list[APIRouter] = [
    products.router,
    products.bench_router,
    images.router,
    orders.router,
    search.router,
    analytics.router,
    etl.router,
    web_router,  # the web pages (web/): HTML for people, over the same stores
]
