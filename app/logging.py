"""Structured logs: an event name and keyword fields per line.

Production writes JSON lines (one object per line, exceptions as structured
tracebacks); development and tests write a readable console line. Context variables
bound with structlog (the request id, see app/middleware/request_id.py) appear on every
line logged while they are bound.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

import structlog

from app.settings import Settings


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Configure structlog for this process; `stream` defaults to stderr."""
    production = settings.environment == "production"
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[structlog.typing.Processor] = (
        [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
        if production
        # the console renderer formats exceptions itself (format_exc_info would warn)
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        # No caching: a cached logger keeps the configuration of its first use, and the
        # app factory reconfigures (tests build many apps); the cost is a dict lookup.
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(shared, tail if production else None, stream or sys.stderr)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so a reconfiguration finds and replaces it (and leaves other handlers,
    pytest's for one, alone)."""


def _route_stdlib_logging(
    shared: list[structlog.typing.Processor],
    tail: list[structlog.typing.Processor] | None,
    stream: TextIO,
) -> None:
    """Production: lines logged through the standard library (uvicorn's startup and
    shutdown lines, errors of libraries) become the same JSON lines. Elsewhere uvicorn
    keeps its own readable output."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(handler)
    if tail is None:
        return
    handler = _JsonHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        # uvicorn's plain-text handlers go; a logger uvicorn switched off (the access log:
        # `serve` turns it off, our http.request line replaces it) stays off
        if uvicorn_logger.handlers:
            uvicorn_logger.handlers.clear()
            uvicorn_logger.propagate = True


def request_ids(payloads: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct request ids carried by outbox event payloads, in order (worker logs)."""
    seen: dict[str, None] = {}
    for payload in payloads:
        value = payload.get("request_id")
        if isinstance(value, str) and value:
            seen.setdefault(value, None)
    return list(seen)


@contextlib.contextmanager
def event_log_context(payload: Mapping[str, Any]) -> Iterator[None]:
    """While handling one outbox event: bind the request id it carries (if any), so the
    worker's log lines name the request that caused the event."""
    value = payload.get("request_id")
    if isinstance(value, str) and value:
        with structlog.contextvars.bound_contextvars(request_id=value):
            yield
    else:
        yield
