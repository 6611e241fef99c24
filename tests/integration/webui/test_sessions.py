"""Sign-in sessions and CSRF over HTTP (no browser needed for these)."""

from __future__ import annotations

import re

import httpx

from app.stores import Stores
from tests.integration.webui import data

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _csrf(client: httpx.AsyncClient, path: str = "/signin") -> str:
    page = await client.get(path)
    found = _CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


async def _sign_in(client: httpx.AsyncClient, key: str, next_path: str = "") -> httpx.Response:
    token = await _csrf(client)
    return await client.post(
        "/signin", data={"csrf_token": token, "api_key": key, "next": next_path}
    )


async def test_signin_opens_an_httponly_session_and_never_shows_the_key(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    key, _ = await data.new_key(stores, "customer")
    response = await _sign_in(client, key)
    assert response.status_code == 303
    assert response.headers["location"] == "/shop"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "polyshop_session" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert key not in cookie
    orders_page = await client.get("/shop/orders")
    assert orders_page.status_code == 200
    assert key not in orders_page.text


async def test_behind_https_the_cookies_are_secure(client: httpx.AsyncClient) -> None:
    page = await client.get("/signin", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in page.headers["set-cookie"]


async def test_a_form_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    key, _ = await data.new_key(stores, "customer")
    await client.get("/signin")  # has the visitor cookie, but sends no token
    refused = await client.post("/signin", data={"api_key": key})
    assert refused.status_code == 403
    wrong = await client.post("/signin", data={"api_key": key, "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    assert "polyshop_session" not in wrong.headers.get("set-cookie", "")
    # signed in, the session's own token is required: the visitor's old one fails
    old = await _csrf(client)
    await _sign_in(client, key)
    assert (await client.post("/signout", data={"csrf_token": old})).status_code == 403


async def test_a_wrong_key_is_reported_next_to_the_field(
    client: httpx.AsyncClient,
) -> None:
    token = await _csrf(client)
    response = await client.post(
        "/signin", data={"csrf_token": token, "api_key": "<script>alert(1)</script>"}
    )
    assert response.status_code == 422
    assert 'id="api_key-error"' in response.text
    assert "<script>alert(1)</script>" not in response.text


async def test_an_expired_session_goes_to_sign_in_and_back(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    key, _ = await data.new_key(stores, "customer")
    await _sign_in(client, key)
    # the session expires (Redis drops it at its TTL)
    async for name in stores.redis.scan_iter(match=f"{stores.settings.redis_prefix}web:session:*"):
        await stores.redis.delete(name)
    response = await client.get("/shop/orders?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/shop/orders%3Fx%3D1"
    back = await _sign_in(client, key, "/shop/orders?x=1")
    assert back.headers["location"] == "/shop/orders?x=1"
    # only paths on this site: no open redirect
    elsewhere = await _sign_in(client, key, "//evil.example/")
    assert elsewhere.headers["location"] == "/shop"


async def test_a_revoked_key_ends_its_session(client: httpx.AsyncClient, stores: Stores) -> None:
    key, _ = await data.new_key(stores, "customer")
    await _sign_in(client, key)
    assert (await client.get("/shop/orders")).status_code == 200
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE api_keys SET revoked_at = now()")
    assert (await client.get("/shop/orders")).status_code == 303


async def test_pages_by_role(client: httpx.AsyncClient, stores: Stores) -> None:
    key, _ = await data.new_key(stores, "warehouse")
    response = await _sign_in(client, key)
    assert response.headers["location"] == "/staff/warehouse"
    assert (await client.get("/shop/orders")).status_code == 403
