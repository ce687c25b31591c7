"""JSON types are taken at their word, generated from the OpenAPI document: a body field
(nested ones, array items and union variants included) the schema calls a boolean, an
integer or a number refuses a value of another JSON type
(``0`` or ``"true"`` for a boolean, ``"1"`` for an integer) with a 422 naming it, rather
than guessing what the caller meant. A guess that turns ``0.0`` into ``false`` switches
something off that the caller may have meant to switch on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.identity import TestUser, create_project
from tests.reliability.test_isolation_matrix import changed, project_rows
from tests.reliability.test_mass_assignment import json_bodies, resolve

# Values of another JSON type that a lenient parser would coerce, per schema type.
COERCIBLE: dict[str, list[Any]] = {
    "boolean": [0, 1.0, "true", "false", "1"],
    "integer": ["1", True],
    "number": ["1.5", True],
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def _allowed(value: Any, types: set[str]) -> bool:
    """Whether the schema itself lets ``value`` through (a decimal amount, say, is given
    as a number or a string; an integer is a number)."""
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


def _types(app: FastAPI, schema: dict[str, Any]) -> set[str]:
    schema = resolve(app, schema)
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for option in schema.get("anyOf", []):
        found |= _types(app, option)
    return found


@dataclass(frozen=True)
class Scalar:
    """A boolean, integer or number field somewhere in a body: ``wrap`` puts a value at
    its place (inside its objects and arrays, with the constants that choose a variant
    of a union), ``label`` is its dotted path."""

    label: str
    name: str
    types: frozenset[str]
    wrap: Callable[[Any], Any]


def _scalars(
    app: FastAPI,
    schema: dict[str, Any],
    *,
    label: str = "",
    wrap: Callable[[Any], Any] = lambda value: value,
    depth: int = 0,
) -> list[Scalar]:
    """Every scalar field of ``schema``, nested objects, array items and union variants
    included."""
    schema = resolve(app, schema)
    if depth > 4:
        return []
    found: list[Scalar] = []
    for option in [*schema.get("anyOf", []), *schema.get("oneOf", [])]:
        if "$ref" in option or option.get("type") in ("object", "array"):
            found += _scalars(app, option, label=label, wrap=wrap, depth=depth + 1)
    if isinstance(schema.get("items"), dict):

        def in_list(value: Any, outer: Callable[[Any], Any] = wrap) -> Any:
            return outer([value])

        found += _scalars(app, schema["items"], label=f"{label}.0", wrap=in_list, depth=depth + 1)
    properties: dict[str, Any] = schema.get("properties", {})
    constants = {
        name: resolve(app, prop)["const"]
        for name, prop in properties.items()
        if "const" in resolve(app, prop)
    }
    for name, prop in properties.items():
        inner = f"{label}.{name}" if label else name

        def place(value: Any, name: str = name, outer: Callable[[Any], Any] = wrap) -> Any:
            return outer({**constants, name: value})

        types = _types(app, prop) & COERCIBLE.keys()
        if types:
            found.append(Scalar(inner, name, frozenset(_types(app, prop)), place))
        found += _scalars(app, prop, label=inner, wrap=place, depth=depth + 1)
    return found


async def test_scalars_of_another_json_type_are_422_naming_the_field(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: TestUser,
    platform_admin_user: TestUser,
    db: AsyncSession,
) -> None:
    project = await create_project(client, alice, name="shop")
    before = await project_rows(db, project["id"], request_counts=False)
    lenient: list[str] = []
    checked = 0
    for op in json_bodies(app):
        caller = platform_admin_user if op.path.startswith("/v1/admin/") else alice
        url = op.url(project_id=project["id"], user_id=alice.id)
        for scalar in _scalars(app, op.body_schema or {}):
            for kind in scalar.types & COERCIBLE.keys():
                for value in (v for v in COERCIBLE[kind] if not _allowed(v, set(scalar.types))):
                    response = await client.request(
                        op.method, url, json=scalar.wrap(value), headers=caller.headers
                    )
                    checked += 1
                    named = (
                        [error["field"] for error in response.json().get("errors", [])]
                        if response.status_code == 422
                        else []
                    )
                    if not any(name.split(".")[-1] == scalar.name for name in named):
                        lenient.append(f"{op.method} {op.path} {scalar.label}={value!r}")
    assert not lenient, f"fields that took a value of another JSON type: {lenient}"
    assert checked >= 80
    assert not changed(before, await project_rows(db, project["id"], request_counts=False))
