"""Request body size limit: 413 problem+json when `Content-Length` is over the limit, or
when a streamed (chunked) body grows past it. Nothing past the limit is buffered.

JSON routes get `max_body_bytes`; multipart image uploads get the image limit plus room
for the form around it (the images area enforces its exact limit while streaming; this
is the backstop for every route).
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.responses import send_problem
from app.settings import Settings

# POST /products/{id}/images: multipart upload (images/routes.py)
_UPLOAD_PATHS = re.compile(r"^/products/[^/]+/images/?$")
_FORM_ROOM = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive`; FastAPI lets HTTPException through its body parsing, so the
    problem handler renders it as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def body_limit_for(path: str, settings: Settings) -> int:
    if _UPLOAD_PATHS.match(path):
        return settings.image_max_bytes + _FORM_ROOM
    return settings.max_body_bytes


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if declared is None and not chunked:
            # no Content-Length, no Transfer-Encoding: HTTP/1.1 says there is no body
            # (a GET, mostly), so nothing to count; no wrapper on every send and receive
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"], self.settings)
        if declared is not None and declared > limit:
            await send_problem(scope, send, 413, f"the request body is larger than {limit} bytes")
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Raised outside FastAPI's body parsing (a route reading the stream itself,
            # or a middleware): answer here unless a response is already under way.
            if started:
                raise
            await send_problem(scope, send, 413, str(exc.detail))


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None: absent or not a number) and whether a
    Transfer-Encoding (or a Content-Length that is not a number) announces a body."""
    length: int | None = None
    other = False
    for key, value in scope["headers"]:
        if key == b"content-length" and length is None:
            text = value.decode("latin-1").strip()
            if text.isdigit():
                length = int(text)
            else:
                other = True
        elif key == b"transfer-encoding":
            other = True
    return length, other
