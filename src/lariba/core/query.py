"""Query parameters given more than once. A parameter that takes a list (``label=``, say)
may be repeated; any other one repeated is refused with a 422 naming it, rather than
quietly read as its last value (``?status=running&status=stopped`` would otherwise list
only the stopped instances, and the caller would never know)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


async def refuse_repeated_query_parameters(request: Request) -> None:
    """A dependency of every route: 422 for a single-valued parameter sent twice."""
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = [name for name, count in counts.items() if count > 1]
    if not repeated:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    lists = _list_parameters(request.app, route.path_format, request.method.lower())
    refused = sorted(name for name in repeated if name not in lists)
    if refused:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"give `{name}` once; it takes a single value",
                    "type": "value_error",
                }
                for name in refused
            ]
        )


def _list_parameters(app: FastAPI, path: str, method: str) -> frozenset[str]:
    """The query parameters of one operation that take a list, from the OpenAPI schema
    (the same description clients read). Outside the schema (console pages): none."""
    return list_query_parameters(app).get((path, method), frozenset())


def list_query_parameters(app: FastAPI) -> dict[tuple[str, str], frozenset[str]]:
    """Per (path, method), the query parameters that take a list; built once per app,
    from its OpenAPI document (built then too, if it was not yet)."""
    cached: dict[tuple[str, str], frozenset[str]] | None = getattr(
        app.state, "list_query_parameters", None
    )
    if cached is not None:
        return cached
    found: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in app.openapi().get("paths", {}).items():
        for method, operation in operations.items():
            found[(path, method)] = frozenset(
                parameter["name"]
                for parameter in operation.get("parameters", [])
                if parameter.get("in") == "query" and _is_array(parameter.get("schema", {}))
            )
    app.state.list_query_parameters = found
    return found


def _is_array(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "array":
        return True
    return any(_is_array(option) for option in schema.get("anyOf", []))
