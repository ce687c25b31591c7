"""What routers share about responses: documented problem answers, and no caching of
responses that carry a secret."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Response

from lariba.core.errors import PROBLEM_JSON

UNAUTHENTICATED: dict[int | str, dict[str, str]] = {
    401: {"description": "Not authenticated (problem+json)"}
}
INVALID_INPUT: dict[int | str, dict[str, str]] = {
    422: {"description": "Invalid input; `errors` names each field (problem+json)"}
}


async def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


# For routes whose response carries a secret (tokens, keys, TOTP seeds, recovery codes,
# invitation tokens): no cache, shared or private, may keep it.
NoStore = Depends(_no_store)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document: every error Lariba answers.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "`urn:lariba:problem:<code>`"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable, machine-readable error code."},
        "instance": {"type": "string", "description": "The request's path."},
        "request_id": {"type": "string", "description": "Quote it when reporting a problem."},
        "errors": {
            "type": "array",
            "description": "On 422: each invalid field, where it was and why.",
            "items": {
                "type": "object",
                "required": ["field", "message", "location"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "location": {"type": "string"},
                },
            },
        },
        "retry_after": {"type": "integer", "description": "On 429: seconds to wait."},
    },
}


def document_problems(app: FastAPI) -> None:
    """Makes the OpenAPI schema say what the API sends: every 4xx and 5xx answer is
    ``application/problem+json`` (FastAPI documents its own 422 as plain JSON and the
    others with no body at all)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status == "default" or int(status) >= 400:
                        response["content"] = dict(problem)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
