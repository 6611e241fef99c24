"""Pure ASGI middleware: proxy headers, request ids, body size limit, rate limiting.

Installed by `install_middleware` (app/main.py). Pure ASGI rather than
`BaseHTTPMiddleware`: no extra task per request, and streamed bodies stay streamed.
"""

from __future__ import annotations

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.middleware.body_limit import BodySizeLimitMiddleware
from app.middleware.openapi_responses import document_error_responses
from app.middleware.ratelimit import RateLimitMiddleware
from app.middleware.request_id import RequestIdMiddleware
from app.settings import Settings


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Add the middleware; Starlette runs the last added first (outermost).

    Order, outside in: proxy headers (a trusted proxy's X-Forwarded-For and -Proto become
    the request's client and scheme: `kit/client_address.py`), request id (every log
    line and every rejection carries it), rate limit (cheapest rejection, before any
    body is read), body size limit.
    """
    app.add_middleware(BodySizeLimitMiddleware, settings=settings)
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(RequestIdMiddleware, access_log=settings.access_log)
    # here, not uvicorn's own (`polyshop serve` turns that off): one list of trusted
    # proxies, the settings', for every way the app is served (tests over ASGI too)
    app.add_middleware(
        ProxyHeadersMiddleware, trusted_hosts=[str(net) for net in settings.trusted_proxies]
    )
    document_error_responses(app, settings.currencies)
