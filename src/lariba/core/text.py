"""Text in what a request sends.

NUL characters: PostgreSQL text cannot hold U+0000, so a NUL in a name, a filter or a
label would fail deep inside a query: a 500, or an export stream cut after its 200. They
are refused up front, with a 422 naming where they were.

Names (``NonBlank``) and free text (``Trimmed``): measured as sent, then trimmed, so the
schema's ``maxLength`` and what the API takes agree."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# ``\u0000`` in a JSON text, not preceded by an escaped backslash (``\\u0000`` is the six
# characters backslash-u-0-0-0-0, which PostgreSQL stores fine).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_STORAGE = "/v1/storage/"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


async def refuse_nul_characters(request: Request) -> None:
    """A dependency of every route: 422 for a NUL in the query, the path or the body."""
    where: list[tuple[str, str]] = [
        ("query", name)
        for name, value in request.query_params.multi_items()
        if "\x00" in name or "\x00" in value
    ]
    # Object keys at signed storage URLs are the storage's to judge (400 `invalid_key`,
    # as S3 answers).
    if not request.url.path.startswith(_STORAGE):
        where += [
            ("path", name)
            for name, value in request.path_params.items()
            if isinstance(value, str) and "\x00" in value
        ]
    route = request.scope.get("route")
    # Only a body the route parses (read already, so this costs no I/O): a raw upload
    # streamed to storage is bytes, NULs and all.
    if isinstance(route, APIRoute) and route.body_field is not None:
        if request.headers.get("content-type", "").startswith(_FORMS):
            form = await request.form()  # parsed by FastAPI already, kept by Starlette
            where += [
                ("body", name)
                for name, value in form.multi_items()
                if "\x00" in name or (isinstance(value, str) and "\x00" in value)
            ]
        elif _JSON_NUL.search(body := await request.body()):
            where += [("body", field) for field in _fields_with_nul(json.loads(body))]
    if where:
        raise RequestValidationError(
            [
                {
                    "loc": (location, name),
                    "msg": "text must not contain NUL characters (U+0000)",
                    "type": "value_error",
                }
                for location, name in where
            ]
        )


def _fields_with_nul(value: Any, path: str = "") -> list[str]:
    """The dotted paths of the strings (or object keys) holding a NUL in a parsed JSON
    body; ``body`` for the body itself."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                found.append(path or "body")
            found += _fields_with_nul(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _fields_with_nul(item, f"{path}.{index}" if path else str(index))
    return found


def _trimmed(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


class _NonBlank:
    """A name's text: its length checked on what was sent (the schema's ``maxLength``),
    then surrounding spaces removed; only spaces is refused (the schema's ``pattern``)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_trimmed, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = r"\S"
        return json_schema


# Annotated[str, StringConstraints(min_length=1, max_length=N), NonBlank]: a name.
NonBlank = _NonBlank()
# Annotated[str, StringConstraints(max_length=N), Trimmed]: optional free text, trimmed
# after its length was checked on what was sent.
Trimmed = AfterValidator(str.strip)
