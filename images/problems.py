"""The problem types of the image endpoints (413, 415; 422 naming the field is
`app.problems.InvalidField`)."""

from __future__ import annotations

from kit.problems import Problem


class ContentTooLarge(Problem):
    status, title = 413, "Content Too Large"


class UnsupportedMediaType(Problem):
    status, title = 415, "Unsupported Media Type"
