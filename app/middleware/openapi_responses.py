"""Document, on every operation of the OpenAPI document, the error answers the frame and
the middleware give: every error is `application/problem+json` (one Problem schema),
429 (rate limit) and 503 (a store is down) can come from any operation, 413 and 400 (a
body FastAPI cannot parse) from any operation with a body, 401/403 from any operation
that needs an API key.

Clients and the schemathesis run (tests/integration/test_fuzz_api.py) then see exactly
the statuses and content types the API really sends. The same pass writes the values
this deployment's settings allow into the schemas (the shop's currencies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from app.middleware.ratelimit import is_exempt
from app.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "one entry per invalid input (422)",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "location": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

_COMMON: dict[str, dict[str, Any]] = {
    "400": {"description": "the body could not be read or parsed"},
    "401": {"description": "missing, invalid or revoked API key"},
    "403": {"description": "the API key's role may not do this"},
    "413": {"description": "the request body is larger than the limit"},
    "429": {"description": "rate limit exceeded", "headers": _RETRY_AFTER},
    "503": {"description": "a store is unavailable, retry later", "headers": _RETRY_AFTER},
}


def document_error_responses(app: FastAPI, currencies: Sequence[str]) -> None:
    """Post-process the generated document once, when it is first asked for."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            add_error_responses(document)
            allow_currencies(document, currencies)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def allow_currencies(document: dict[str, Any], currencies: Sequence[str]) -> None:
    """Every request schema's `currency` property lists the shop's currencies (checked
    by the products API against the settings, which the static models cannot know)."""
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        prop = schema.get("properties", {}).get("currency")
        if prop is not None and name.endswith(("In", "Patch")):
            prop["enum"] = list(currencies)
            if name.endswith("In"):
                prop["default"] = currencies[0]  # what the route fills in


def add_error_responses(document: dict[str, Any]) -> None:
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            wanted = []
            if not is_exempt(path):
                wanted += ["429", "503"]
            if "requestBody" in operation:
                wanted += ["400", "413"]
            if operation.get("security"):
                wanted += ["401", "403"]
            for code in wanted:
                responses.setdefault(code, dict(_COMMON[code]))
            for code, response in responses.items():
                if code == "default" or (code.isdigit() and int(code) >= 400):
                    response["content"] = dict(_PROBLEM_CONTENT)
