"""What the OpenAPI document says about the job routes: their bodies and every error they answer.

Every error is ``{"detail": message, "code": code}`` (``field`` too when an option is refused), so the
document describes that shape for each status a route can answer, instead of FastAPI's default 422.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class ProblemBody(BaseModel):
    """An error answer: a message fit for a user and a machine-readable code."""

    detail: str
    code: str
    field: str | None = None


_WHY = {
    400: "Malformed request (body, cursor, time or header)",
    401: "Missing, unknown or revoked API key",
    403: "Refused without API keys: cross-site origin or foreign Host",
    404: "No such job (another caller's job answers the same)",
    409: "The job is not in a state that allows this",
    410: "The job's media was deleted",
    413: "The body is larger than the upload (or JSON) limit",
    415: "Neither multipart/form-data nor application/json",
    422: "A field or option is invalid (``field`` names it)",
    429: "A per-key limit is reached (``Retry-After`` says when to try again)",
    503: "The database, storage or encryption key is not available",
    507: "The service is out of disk space",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of these error statuses."""
    return {status: {"model": ProblemBody, "description": _WHY[status]} for status in statuses}


COMMON = (401, 403, 422, 503)

#: What a cursor of ``GET /v1/jobs`` looks like: the last job's creation time (epoch seconds) and its id.
CURSOR_PATTERN = r"^[0-9]{1,17}(\.[0-9]{1,17})?_[0-9A-Za-z-]{1,64}$"
#: An ``Idempotency-Key``: 1-255 visible ASCII characters, spaces only inside.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemBody"}
_BODY_METHODS = {"post", "put", "patch"}


def _add(responses: dict[str, Any], status: int) -> None:
    entry = responses.setdefault(str(status), {"description": _WHY[status]})
    entry["content"] = {"application/json": {"schema": _PROBLEM_REF}}


def describe_errors(app: FastAPI) -> None:
    """Make the app's document say what every route really answers when it refuses a request.

    Route by route, FastAPI only knows the errors declared on it, and describes 422 as its own validation
    list. Every error of this service is a :class:`ProblemBody`, from handlers that serve all routes: a
    malformed or oversized body (400, 413), an API key or local-mode refusal (401, 403), an unknown id in the
    path (404), a refused field (422), a database, storage or key that is unavailable (503) and a full disk
    (507). This adds those to each operation, in that shape."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def document() -> dict[str, Any]:
        doc = build()
        if doc.get("x-errors-described"):
            return doc
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ProblemBody", ProblemBody.model_json_schema())
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                statuses = [401, 403, 422, 503, 507]
                if method in _BODY_METHODS:
                    statuses += [400, 413]
                if "{" in path:
                    statuses.append(404)
                for status in statuses:
                    _add(responses, status)
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        doc["x-errors-described"] = True
        return doc

    app.openapi = document  # type: ignore[method-assign]

SUBMIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object",
                "properties": {
                    "source": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 8,
                               "description": "One or more photos of the person to put in (up to 8)"},
                    "target": {"type": "string", "format": "binary", "description": "The image or video to change"},
                    "reference_face": {"type": "string", "format": "binary",
                                       "description": "Photo of the person to replace (face_selector_mode reference)"},
                    "source_uri": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
                    "target_uri": {"type": "string"},
                    "reference_face_uri": {"type": "string"},
                    "options": {"type": "string", "description": "A JSON object of options (or one field per option)"},
                    "webhook_url": {"type": "string"},
                    "webhook_secret": {"type": "string", "description": "'whsec_' + base64 of 16-64 bytes"},
                },
            }},
            "application/json": {"schema": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "sources": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
                    "target": {"type": "string"},
                    "reference_face": {"type": "string"},
                    "options": {"type": "object"},
                    "webhook_url": {"type": "string"},
                    "webhook_secret": {"type": "string"},
                },
                "required": ["sources", "target"],
            }},
        },
    },
}
