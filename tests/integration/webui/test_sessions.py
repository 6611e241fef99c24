"""Sign-in sessions and CSRF over HTTP (no browser needed for these)."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from app.commands.customers import customers_cli
from app.settings import Settings, get_settings
from app.stores import Stores
from kit import passwords
from storage import customers
from tests.integration.webui import data
from tests.support.nginx import has_nginx, nginx_in_front
from tests.support.serving import served
from web import throttle

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


# --- e-mail and password ------------------------------------------------------------------


async def _customer(stores: Stores, password: str) -> tuple[int, str]:
    email = f"{uuid.uuid4().hex[:10]}@example.test"
    async with stores.pg.connection() as conn:
        made = await customers.create(conn, email=email, name="P")
        await customers.set_password_hash(conn, made.id, passwords.hash_password(password))
    return made.id, email


async def _password_sign_in(
    client: httpx.AsyncClient, email: str, password: str, next_path: str = ""
) -> httpx.Response:
    token = await _csrf(client)
    return await client.post(
        "/signin",
        data={"csrf_token": token, "email": email, "password": password, "next": next_path},
    )


async def test_wrong_credentials_say_the_same_whoever_asks(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    _, email = await _customer(stores, "s3cret-enough")
    wrong = await _password_sign_in(client, email, "not-it-at-all")
    unknown = await _password_sign_in(client, f"nobody-{email}", "not-it-at-all")
    assert wrong.status_code == unknown.status_code == 422
    message = "The e-mail or the password is wrong."
    assert message in wrong.text and message in unknown.text
    assert "polyshop_session" not in wrong.headers.get("set-cookie", "")
    ok = await _password_sign_in(client, email, "s3cret-enough", "/shop/orders")
    assert ok.status_code == 303 and ok.headers["location"] == "/shop/orders"
    assert (await client.get("/shop/orders")).status_code == 200


async def test_failed_sign_ins_are_throttled_per_email(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    _, email = await _customer(stores, "s3cret-enough")
    for _ in range(throttle.PER_ACCOUNT):
        assert (await _password_sign_in(client, email, "guess-guess")).status_code == 422
    blocked = await _password_sign_in(client, email, "s3cret-enough")  # even the right one
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= throttle.WINDOW_S
    assert "Too many failed sign-ins" in blocked.text
    assert "polyshop_session" not in blocked.headers.get("set-cookie", "")
    # another e-mail from the same address is not locked out by these
    _, other = await _customer(stores, "other-secret")
    assert (await _password_sign_in(client, other, "other-secret")).status_code == 303


async def _wrong_key_sign_ins(base: str, source: str, forwarded_for: list[str | None]) -> list[int]:
    """One failed sign-in per entry, over real TCP from the loopback address `source`,
    with that X-Forwarded-For header (None: none); the answers' status codes."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=30) as c:
        token = await _csrf(c)
        codes = []
        for forwarded in forwarded_for:
            headers = {"X-Forwarded-For": forwarded} if forwarded else {}
            form = {"csrf_token": token, "api_key": "ps_not_a_key"}
            codes.append((await c.post("/signin", data=form, headers=headers)).status_code)
        return codes


@pytest.mark.skipif(not has_nginx(), reason="nginx is not installed")
async def test_behind_nginx_each_shopper_has_its_own_address_count(
    app: FastAPI, tmp_path: Path
) -> None:
    # Every request reaches the app from nginx (127.0.0.1, a trusted proxy); two shoppers
    # on their own addresses (127.0.0.2 and .3: the whole of 127/8 is loopback)
    limit = throttle.PER_ADDRESS
    async with served(app) as url:
        with nginx_in_front(tmp_path, [int(url.rsplit(":", 1)[1])]) as base:
            first = await _wrong_key_sign_ins(base, "127.0.0.2", [None] * (limit + 1))
            second = await _wrong_key_sign_ins(base, "127.0.0.3", [None])
            # what a shopper writes into the header itself does not move them elsewhere
            spoofing = await _wrong_key_sign_ins(base, "127.0.0.2", ["198.51.100.7"])
    assert first == [422] * limit + [429]
    assert second == [422]
    assert spoofing == [429]


async def test_a_forwarded_for_from_a_peer_that_is_no_trusted_proxy_is_ignored(
    app: FastAPI,
) -> None:
    # straight to the app from 127.0.0.2 (not in trusted_proxies), a new address claimed
    # every time: all of them are counted for the peer
    limit = throttle.PER_ADDRESS
    claims: list[str | None] = [f"198.51.100.{i}" for i in range(limit + 1)]
    async with served(app) as url:
        spoofed = await _wrong_key_sign_ins(url, "127.0.0.2", claims)
    assert spoofed == [422] * limit + [429]


async def test_a_new_password_ends_the_sessions_of_the_old_one(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    customer_id, email = await _customer(stores, "first-password")
    await _password_sign_in(client, email, "first-password")
    assert (await client.get("/shop/orders")).status_code == 200
    async with stores.pg.connection() as conn:
        await customers.set_password_hash(
            conn, customer_id, passwords.hash_password("second-password")
        )
    assert (await client.get("/shop/orders")).status_code == 303


async def test_the_cli_sets_a_password(settings: Settings, stores: Stores) -> None:
    _, email = await _customer(stores, "old-password")
    env = {
        "POLYSHOP_DATABASE_URL": settings.database_url,
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
    }

    def invoke(*args: str, stdin: str) -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(customers_cli, list(args), input=stdin, env=env)
        finally:
            get_settings.cache_clear()

    done = await asyncio.to_thread(
        invoke, "set-password", "--email", email, "--password-stdin", stdin="brand-new-pass\n"
    )
    assert done.exit_code == 0, done.output
    short = await asyncio.to_thread(
        invoke, "set-password", "--email", email, "--password-stdin", stdin="short\n"
    )
    assert short.exit_code != 0 and "8 to 200 characters" in short.output
    nobody = await asyncio.to_thread(
        invoke, "set-password", "--email", "no@body.test", "--password-stdin", stdin="long-enough\n"
    )
    assert nobody.exit_code == 1
    async with stores.pg.connection() as conn:
        found = await customers.credentials(conn, email)
    assert found is not None
    assert await passwords.verify(found[1], "brand-new-pass")
    assert not await passwords.verify(found[1], "old-password")


# --- failures for people are pages --------------------------------------------------------

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def test_a_failed_csrf_check_is_an_html_page_for_a_browser(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    key, _ = await data.new_key(stores, "customer")
    await client.get("/signin")
    page = await client.post("/signin", data={"api_key": key}, headers=HTML)
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert 'data-testid="error"' in page.text and "security token" in page.text
    # a client that does not ask for HTML keeps problem+json
    api = await client.post("/signin", data={"api_key": key})
    assert api.status_code == 403
    assert api.headers["content-type"].startswith("application/problem+json")
    assert api.json()["status"] == 403


async def test_a_role_failure_is_an_html_page(client: httpx.AsyncClient, stores: Stores) -> None:
    key, _ = await data.new_key(stores, "customer")
    await _sign_in(client, key)
    page = await client.get("/staff/products", headers=HTML)
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "needs the role admin" in page.text and "Sign in with another account" in page.text
    missing = await client.get("/shop/orders/999999999", headers=HTML)
    assert missing.status_code == 404 and "no such order" in missing.text
    # the JSON API is untouched by the web pages' handling
    api = await client.get("/products/999999999", headers=HTML)
    assert api.headers["content-type"].startswith("application/problem+json")


async def test_a_form_posted_after_the_session_expired_goes_to_sign_in_and_back(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    key, _ = await data.new_key(stores, "customer")
    await _sign_in(client, key)
    token = await _csrf(client, "/shop/cart")
    async for name in stores.redis.scan_iter(match=f"{stores.settings.redis_prefix}web:session:*"):
        await stores.redis.delete(name)
    posted = await client.post(
        "/shop/checkout",
        data={"csrf_token": token, "idempotency_key": "k1"},
        headers={**HTML, "Referer": "http://polyshop.test/shop/cart"},
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == "/signin?next=/shop/cart"


async def test_an_htmx_request_without_a_session_redirects_the_whole_page(
    client: httpx.AsyncClient,
) -> None:
    fragment = await client.get(
        "/staff/etl/runs",
        headers={"HX-Request": "true", "HX-Current-URL": "http://polyshop.test/staff/etl?x=1"},
    )
    assert fragment.status_code == 401
    assert fragment.headers["hx-redirect"] == "/signin?next=/staff/etl%3Fx%3D1"
