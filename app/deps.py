"""Request dependencies: reach the process's clients through `request.app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.settings import Settings
from app.stores import Stores


def get_stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores


def get_settings_dep(request: Request) -> Settings:
    return get_stores(request).settings


StoresDep = Annotated[Stores, Depends(get_stores)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
