"""Request dependencies: reach the process's clients through `request.app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.settings import Settings
from app.stores import Stores


def get_stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in
# its thread pool, a thread hand-off per request for a one-line lookup (measured in the
# image-upload profile: half of the time spent resolving dependencies).
async def stores_dependency(request: Request) -> Stores:
    return get_stores(request)


async def settings_dependency(request: Request) -> Settings:
    return get_stores(request).settings


StoresDep = Annotated[Stores, Depends(stores_dependency)]
SettingsDep = Annotated[Settings, Depends(settings_dependency)]
