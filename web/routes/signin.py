"""Sign in with an API key, sign out."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response

from web import sessions
from web.context import CSRF_COOKIE, PageDep, set_cookie

router = APIRouter()

HOME_BY_ROLE = {"customer": "/shop", "warehouse": "/staff/warehouse", "admin": "/staff/products"}


def _safe_next(target: str) -> str:
    """Only a path on this site (no `//host`, no scheme): no open redirect."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


@router.get("/signin")
async def signin_form(page: PageDep, next: str = Query("", max_length=2000)) -> Response:
    return page.render("signin.html", {"next": _safe_next(next), "errors": {}})


@router.post("/signin")
async def signin(page: PageDep) -> Response:
    form = await page.form()
    key = str(form.get("api_key") or "").strip()
    target = _safe_next(str(form.get("next") or ""))
    errors: dict[str, str] = {}
    opened = None
    if not key:
        errors["api_key"] = "Enter your API key."
    elif len(key) > 200 or (opened := await sessions.sign_in(page.stores, key)) is None:
        errors["api_key"] = "This key is unknown or revoked."
    if errors or opened is None:
        return page.render("signin.html", {"next": target, "errors": errors}, status=422)
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
