"""RFC 9457 problem types: an error with an HTTP status, raised anywhere in a request
and rendered as `application/problem+json` by the handlers in app/problems.py. Here,
below app/, so that domain packages (images/, ...) raise them too."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error with an HTTP status. Raise a subclass or an instance anywhere in a request."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class InvalidField(Problem):
    """422 naming the offending field, in the same shape as request validation errors
    (`errors[].field/location/message`), for checks the schema cannot express."""

    status, title = 422, "Unprocessable Content"

    def __init__(self, field: str, message: str, location: str = "body", **extra: Any) -> None:
        super().__init__(
            f"invalid input: {field}: {message}",
            errors=[{"field": field, "location": location, "message": message}],
            **extra,
        )


class NotFound(Problem):
    status, title = 404, "Not Found"


class Conflict(Problem):
    status, title = 409, "Conflict"


class PreconditionFailed(Problem):
    status, title = 412, "Precondition Failed"


class Unauthorized(Problem):
    status, title = 401, "Unauthorized"


class Forbidden(Problem):
    status, title = 403, "Forbidden"


class ServiceUnavailable(Problem):
    status, title = 503, "Service Unavailable"


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def render_problem(request: Request, problem: Problem) -> JSONResponse:
    """The response for a problem that is answered rather than raised (where raising
    would roll back the request transaction)."""
    return problem_response(
        request, problem.status, problem.title, problem.detail, problem.headers, **problem.extra
    )
