"""The routers of the feature areas, mounted by `app.main.create_app`. Add yours here.
Domain packages (images/) get the app's dependencies passed in: they do not import app/."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.auth import require_role
from app.deps import stores_dependency
from app.routes import analytics, etl, memberships, orders, products, search
from app.transaction import read_connection_dependency, request_transaction
from images.routes import build_router as image_router
from kit.query_once import reject_repeated_query_params
from web.router import router as web_router


def feature_routers() -> list[APIRouter]:
    # every API route answers 422 for a once-only query parameter given twice
    api = APIRouter(dependencies=[Depends(reject_repeated_query_params)])
    for router in _api_routers():
        api.include_router(router)
    return [api, web_router]  # the web pages (web/): HTML for people, over the same stores


def _api_routers() -> list[APIRouter]:
    return [
        products.router,
        products.bench_router,
        image_router(
            stores=stores_dependency,
            admin=require_role("admin"),
            transaction=request_transaction,
            read_connection=read_connection_dependency,
        ),
        orders.router,
        search.router,
        analytics.router,
        etl.router,
        memberships.router,
    ]
