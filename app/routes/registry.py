"""Routers of the feature areas, mounted by `app.main.create_app`. Add yours here."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
