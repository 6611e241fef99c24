"""Sign in (a customer's e-mail and password, or an API key), sign out.

Wrong credentials get one message whatever was wrong (no hint which e-mails have an
account); failures are counted per e-mail and per client address (web/throttle.py; the address
is `kit/client_address.py`'s, the same as the rate limit's: behind nginx, the client it
forwarded, never nginx's own) and answer 429 beyond the limit.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response

from kit.client_address import client_address
from web import sessions, throttle
from web.context import CSRF_COOKIE, Page, PageDep, set_cookie
from web.errors import PageRoute
from web.sessions import Session

router = APIRouter(route_class=PageRoute)

HOME_BY_ROLE = {"customer": "/shop", "warehouse": "/staff/warehouse", "admin": "/staff/products"}
WRONG_PASSWORD = "The e-mail or the password is wrong."
WRONG_KEY = "This key is unknown or revoked."


def _safe_next(target: str) -> str:
    """Only a path on this site (no `//host`, no scheme): no open redirect."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


def _address(page: Page) -> str:
    # as the rate limit keys it: behind a trusted proxy, the client that proxy forwarded
    return client_address(page.request.scope)


@router.get("/signin")
async def signin_form(page: PageDep, next: str = Query("", max_length=2000)) -> Response:
    return page.render("signin.html", {"next": _safe_next(next), "errors": {}, "v": {}})


@router.post("/signin")
async def signin(page: PageDep) -> Response:
    form = await page.form()
    key = str(form.get("api_key") or "").strip()
    email = str(form.get("email") or "").strip()[:320]
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or ""))
    redis, prefix = page.stores.redis, page.stores.settings.redis_prefix
    by_key = "api_key" in form
    field = "api_key" if by_key else "password"
    errors: dict[str, str] = {}
    if by_key and not key:
        errors["api_key"] = "Enter your API key."
    if not by_key:
        if not email:
            errors["email"] = "Enter your e-mail address."
        if not password:
            errors["password"] = "Enter your password."
    status, wait = 422, 0
    opened: tuple[str, Session] | None = None
    if not errors:
        wait = await throttle.retry_after(redis, prefix, None if by_key else email, _address(page))
        if wait:
            minutes = max(1, (wait + 59) // 60)
            errors[field] = f"Too many failed sign-ins: try again in {minutes} minutes."
            status = 429
        elif by_key:
            if len(key) <= 200:
                opened = await sessions.sign_in(page.stores, key)
            if opened is None:
                errors["api_key"] = WRONG_KEY
        else:
            opened = await sessions.sign_in_password(page.stores, email, password)
            if opened is None:
                errors["password"] = WRONG_PASSWORD
        if opened is None and status != 429:
            await throttle.failed(redis, prefix, None if by_key else email, _address(page))
    if errors or opened is None:
        response = page.render(
            "signin.html",
            {"next": target, "errors": errors, "v": {"email": email}},
            status=status,
        )
        if status == 429:
            response.headers["Retry-After"] = str(wait)
        return response
    if not by_key:
        await throttle.succeeded(redis, prefix, email)
    token, session = opened
    response = RedirectResponse(target or HOME_BY_ROLE[session.role], status_code=303)
    set_cookie(page.request, response, sessions.COOKIE, token)
    # the visitor's CSRF token is retired: the session has its own from now on
    response.delete_cookie(CSRF_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/signout")
async def signout(page: PageDep) -> Response:
    await page.form()
    await sessions.sign_out(page.stores, page.request.cookies.get(sessions.COOKIE))
    response = RedirectResponse("/shop", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
