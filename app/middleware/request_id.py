"""Request ids: accept a well-formed `X-Request-ID`, else make one; echo it in the response;
bind it to structlog's context variables so every log line of the request carries it.

`current_request_id()` gives it to code that writes outbox events, so the worker can log
the id of the request that caused the event it relays.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.outbox import CORRELATION_ID

log = structlog.get_logger()

HEADER = "X-Request-ID"
_RAW_HEADER = HEADER.lower().encode("latin-1")
# Visible ASCII without separators that could forge log fields or headers; long enough
# for a UUID or a trace id, short enough to keep log lines small.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

# One variable for the whole process: the outbox copies it into the events a request writes.
_request_id = CORRELATION_ID


def current_request_id() -> str | None:
    """The id of the request being served by this task, or None outside a request."""
    return _request_id.get()


def accept_or_generate(candidate: str | None) -> str:
    """The client's id if well-formed, else a fresh random one (never an error)."""
    if candidate and _WELL_FORMED.match(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_or_generate(_header(scope, b"x-request-id"))
        token = _request_id.set(request_id)
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        raw_id = (_RAW_HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # appended, not set: nothing else in the app sends this header
                message["headers"] = [*message.get("headers", ()), raw_id]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # The id stays bound: the 500 is logged and answered by Starlette's
            # ServerErrorMiddleware, outside this one (app/problems.py puts the id in
            # the answer). Each served request runs in its own task, so nothing leaks.
            self._log(scope, status, started)
            raise
        self._log(scope, status, started)
        structlog.contextvars.reset_contextvars(**bound)
        _request_id.reset(token)

    def _log(self, scope: Scope, status: int, started: float) -> None:
        if self.access_log:
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
