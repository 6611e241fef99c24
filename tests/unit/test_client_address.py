"""The client address every per-address limit keys on (kit/client_address.py), through
the app's own middleware stack (`install_middleware`): a trusted proxy's X-Forwarded-For
and X-Forwarded-Proto are believed, anyone else's are ignored. No services: the rate
limiter lets requests through while the app has no stores."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request

from app.middleware import install_middleware
from app.settings import Settings
from kit.client_address import client_address

SETTINGS = Settings.model_validate({"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]})


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    install_middleware(app, settings)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        return {"address": client_address(request.scope), "scheme": request.url.scheme}

    return app


async def _ask(peer: str, headers: dict[str, str], settings: Settings = SETTINGS) -> dict[str, str]:
    transport = httpx.ASGITransport(app=_app(settings), client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/whoami", headers=headers)
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        # an untrusted peer cannot claim another address
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # nginx on localhost: the client it saw (`$proxy_add_x_forwarded_for` appends it)
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        # what the client wrote itself (left of nginx's entry) is ignored
        ("127.0.0.1", "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        # a chain of trusted proxies is walked from the right
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),
        ("127.0.0.1", None, "127.0.0.1"),
    ],
)
async def test_the_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert (await _ask(peer, headers))["address"] == expected


async def test_https_at_a_trusted_proxy_only() -> None:
    https = {"X-Forwarded-Proto": "https"}
    assert (await _ask("127.0.0.1", https))["scheme"] == "https"
    assert (await _ask("203.0.113.9", https))["scheme"] == "http"


async def test_no_trusted_proxy_believes_no_header() -> None:
    nobody = Settings.model_validate({"trusted_proxies": []})
    seen = await _ask("127.0.0.1", {"X-Forwarded-For": "198.51.100.1"}, nobody)
    assert seen["address"] == "127.0.0.1"


def test_a_trusted_proxy_that_is_no_address_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings.model_validate({"trusted_proxies": ["nginx"]})
