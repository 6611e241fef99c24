"""The problem types of the image endpoints (413, 415, 422 naming the field)."""

from __future__ import annotations

from app.problems import Problem


class ContentTooLarge(Problem):
    status, title = 413, "Content Too Large"


class UnsupportedMediaType(Problem):
    status, title = 415, "Unsupported Media Type"


class InvalidField(Problem):
    """422 naming the offending field, in the same shape as request validation errors."""

    status, title = 422, "Unprocessable Content"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"invalid input: {field}: {message}",
            errors=[{"field": field, "location": "body", "message": message}],
        )
