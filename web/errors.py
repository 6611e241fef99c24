"""Failures for people are pages, not JSON.

Every web route is a `PageRoute`: an HTTP error raised by a page (a failed CSRF check,
a role the session lacks, no such product) answers an HTML page with its status when
the client is a browser (`Accept: text/html`, or an htmx request); other clients get
the app's problem+json as before. `SignInNeeded` (no session, or an expired one) is a
303 to `/signin?next=<the page>`; for an htmx request, whose redirects the browser
follows silently inside the fragment, it is `HX-Redirect` to the same address.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from storage.errors import StoreUnavailable


class SignInNeeded(Exception):
    """The page needs a session: send the person to sign in, then back to `target`."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers


def signin_location(target: str) -> str:
    return f"/signin?next={quote(target)}"


def _back_to(request: Request, target: str) -> str:
    """For an htmx fragment, the page the person is on (its path), not the fragment."""
    current = request.headers.get("hx-current-url", "")
    parts = urlsplit(current)
    if current and parts.netloc == request.url.netloc and parts.path.startswith("/"):
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return target


def error_page(request: Request, status: int, detail: str | None) -> Response:
    from web.context import fallback_page  # the page context imports this module

    title = HTTPStatus(status).phrase
    page = getattr(request.state, "page", None) or fallback_page(request)
    return page.render(
        "error.html", {"title": title, "detail": detail or "", "status": status}, status=status
    )


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInNeeded as need:
                if "hx-request" in request.headers:
                    location = signin_location(_back_to(request, need.target))
                    return Response(status_code=401, headers={"HX-Redirect": location})
                return Response(
                    status_code=303,
                    headers={
                        "Location": signin_location(need.target),
                        "Cache-Control": "no-store",
                    },
                )
            except HTTPException as exc:
                if not wants_html(request) or exc.status_code < 400:
                    raise
                detail = exc.detail if isinstance(exc.detail, str) else None
                response = error_page(request, exc.status_code, detail)
                response.headers.update(exc.headers or {})
                return response
            except StoreUnavailable as exc:
                if not wants_html(request):
                    raise
                response = error_page(
                    request, 503, f"The {exc.store} store is unavailable: retry in a moment."
                )
                response.headers["Retry-After"] = "5"
                return response

        return page_handler
