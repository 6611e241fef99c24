"""Per-request page context: who is signed in, the CSRF token, rendering, guards.

CSRF: the synchronizer-token pattern. A signed-in person's token lives in their session;
a visitor's in an HttpOnly cookie of its own (double submit). Every POST form carries it
in the field `csrf_token` (htmx requests in the header `X-CSRF-Token`, read from a meta
tag); a mismatch answers 403. Cookies are SameSite=Lax (Strict would drop the session
on the first click from another site), HttpOnly, and Secure behind HTTPS.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from storage.api_keys import Role
from storage.money import format_minor
from web import cart as cart_cookie
from web import sessions
from web.backend import WebStores, get_stores
from web.errors import SignInNeeded
from web.sessions import Session

CSRF_COOKIE = "polyshop_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["money"] = format_minor
templates.env.globals["roles_nav"] = {
    "customer": [("/shop/orders", "My orders"), ("/shop/memberships", "Memberships")],
    "warehouse": [("/staff/warehouse", "Warehouse")],
    "admin": [
        ("/staff/warehouse", "Warehouse"),
        ("/staff/products", "Products"),
        ("/staff/etl", "ETL"),
        ("/staff/status", "Status"),
        ("/staff/keys", "API keys"),
        ("/staff/console", "Analytics"),
    ],
}


def secure_request(request: Request) -> bool:
    """HTTPS here or at a trusted proxy in front: its X-Forwarded-Proto is the request's
    scheme (app/middleware; from any other peer the header is ignored)."""
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=secure_request(request),
        path="/",
        **kw,
    )


@dataclass
class Page:
    request: Request
    stores: WebStores
    session: Session | None
    csrf: str
    new_csrf: bool
    cart: dict[int, int] = field(default_factory=dict)

    @property
    def role(self) -> Role | None:
        return self.session.role if self.session else None

    def require(self, *roles: Role) -> Session:
        """The session if it has one of `roles`; otherwise off to sign in (and back)."""
        if self.session is None:
            target = self.request.url.path
            if self.request.url.query:
                target += "?" + self.request.url.query
            raise SignInNeeded(target)
        if self.session.role not in roles:
            raise HTTPException(403, f"This page needs the role {' or '.join(roles)}.")
        return self.session

    def render(
        self, template: str, context: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        ctx = {
            "page": self,
            "csrf_token": self.csrf,
            "cart_count": sum(self.cart.values()),
            **(context or {}),
        }
        response = templates.TemplateResponse(self.request, template, ctx, status_code=status)
        self.finish(response)
        return response

    def finish(self, response: Response) -> None:
        if self.new_csrf:
            set_cookie(self.request, response, CSRF_COOKIE, self.csrf)
        response.headers.setdefault("Cache-Control", "no-store")

    async def form(self) -> FormData:
        """The POSTed form, after the CSRF check (403 on failure)."""
        form = await self.request.form()
        sent = form.get(CSRF_FIELD) or self.request.headers.get(CSRF_HEADER) or ""
        if not isinstance(sent, str) or self.new_csrf or not hmac.compare_digest(sent, self.csrf):
            if self.session is None and self.request.cookies.get(sessions.COOKIE):
                # the form was made for a session that has expired since: sign in again,
                # then back to the page the form was on
                raise SignInNeeded(self._came_from())
            raise HTTPException(
                403, "The form's security token is missing or wrong: reload the page."
            )
        return form

    def _came_from(self) -> str:
        referer = urlsplit(self.request.headers.get("referer", ""))
        if referer.netloc == self.request.url.netloc and referer.path.startswith("/"):
            return referer.path + (f"?{referer.query}" if referer.query else "")
        return self.request.url.path


async def page_dependency(request: Request) -> Page:
    stores = get_stores(request)
    session = await sessions.load(stores, request.cookies.get(sessions.COOKIE))
    if session is not None:
        csrf, new = session.csrf, False
    else:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        csrf, new = (
            (cookie, False) if 20 <= len(cookie) <= 100 else (secrets.token_urlsafe(32), True)
        )
    page = Page(request, stores, session, csrf, new, cart_cookie.read(request))
    request.state.page = page  # for the error page (web/errors.py)
    return page


def fallback_page(request: Request) -> Page:
    """A page context for an error raised before the page's own was made."""
    return Page(request, get_stores(request), None, secrets.token_urlsafe(32), True)


PageDep = Annotated[Page, Depends(page_dependency)]
