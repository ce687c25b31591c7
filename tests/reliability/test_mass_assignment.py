"""Mass assignment, generated from the OpenAPI document: every JSON body refuses fields it
does not declare, so a write that tries to set ownership, status, roles, quotas or ids is
422 naming the field and changes nothing. Where such a field is part of a body (the role
of an invitation, the project of an API key), its values are limited."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.models import ApiKey, Invitation, User
from tests.fixtures.identity import TestUser, create_project
from tests.fixtures.routes import Operation, operations
from tests.reliability.test_isolation_matrix import changed, project_rows

# Fields a caller must never set through a body that does not declare them, with the
# value an attacker would send.
PRIVILEGED: dict[str, Any] = {
    "project_id": None,  # filled with another tenant's project id
    "owner": "mallory@example.com",
    "owner_id": None,  # filled with the attacker's user id
    "status": "available",
    "role": "owner",
    "quota": 1000,
    "quotas": {"instances": 1000, "vcpus": 1000},
    "id": str(uuid.UUID(int=1)),
    "created_at": "2000-01-01T00:00:00Z",
    "is_admin": True,
    "admin": True,
    "is_platform_admin": True,
}


def resolve(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind a ``$ref`` or an optional (``anyOf [ref, null]``) body."""
    components = app.openapi()["components"]["schemas"]
    if "$ref" in schema:
        return resolve(app, components[schema["$ref"].rsplit("/", 1)[-1]])
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return resolve(app, options[0])
    return schema


def _objects_allowing_extras(
    app: FastAPI, schema: dict[str, Any], seen: set[str] | None = None
) -> list[str]:
    """Titles of the object schemas, in ``schema`` and nested in it, that would accept
    undeclared properties. Maps (``additionalProperties`` given as a schema, like labels)
    name no fields and are fine."""
    seen = set() if seen is None else seen
    out: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return out
        seen.add(name)
        schema = app.openapi()["components"]["schemas"][name]
    if "properties" in schema and schema.get("additionalProperties", True) is True:
        out.append(schema.get("title", "?"))
    nested = [
        *schema.get("properties", {}).values(),
        *schema.get("anyOf", []),
        *schema.get("oneOf", []),
        *schema.get("allOf", []),
    ]
    if isinstance(schema.get("items"), dict):
        nested.append(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        nested.append(schema["additionalProperties"])
    for child in nested:
        out += _objects_allowing_extras(app, child, seen)
    return out


def json_bodies(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if op.has_json_body and op.body_schema is not None]


def test_every_json_body_refuses_undeclared_fields(app: FastAPI) -> None:
    lax = {
        f"{op.method} {op.path}": found
        for op in json_bodies(app)
        if (found := _objects_allowing_extras(app, op.body_schema or {}))
    }
    assert not lax, f"these bodies accept undeclared fields (give them extra='forbid'): {lax}"
    assert len(json_bodies(app)) >= 30


async def test_privileged_fields_no_body_declares_are_422_and_change_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: TestUser,
    bob: TestUser,
    platform_admin_user: TestUser,
    db: AsyncSession,
) -> None:
    project = await create_project(client, alice, name="shop")
    foreign = await create_project(client, bob, name="elsewhere")
    values = {**PRIVILEGED, "project_id": foreign["id"], "owner_id": str(bob.id)}
    before = await project_rows(db, project["id"], request_counts=False), await _users(db)
    checked = 0
    for op in json_bodies(app):
        declared = resolve(app, op.body_schema or {}).get("properties", {})
        caller = platform_admin_user if op.path.startswith("/v1/admin/") else alice
        url = op.url(project_id=project["id"], user_id=alice.id)
        for field, value in values.items():
            if field in declared:
                continue
            response = await client.request(
                op.method, url, json={field: value}, headers=caller.headers
            )
            where = (op.method, op.path, field)
            assert response.status_code == 422, (*where, response.text)
            named = [error["field"] for error in response.json()["errors"]]
            assert any(name.split(".")[-1] == field for name in named), (*where, named)
            checked += 1
    after = await project_rows(db, project["id"], request_counts=False), await _users(db)
    assert not changed(before[0], after[0])
    assert before[1] == after[1]
    assert checked >= 300


async def _users(db: AsyncSession) -> list[Any]:
    rows = list(await db.execute(select(User.__table__).order_by(User.id)))
    await db.rollback()
    return rows


async def test_roles_in_bodies_stop_below_owner(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice, name="shop")
    base = f"/v1/projects/{project['id']}"
    invited = await client.post(
        f"{base}/invitations", json={"email": bob.email, "role": "owner"}, headers=alice.headers
    )
    assert invited.status_code == 422, invited.text
    assert invited.json()["errors"][0]["field"] == "role"
    assert await db.scalar(select(Invitation.id)) is None

    invited = await client.post(
        f"{base}/invitations", json={"email": bob.email, "role": "viewer"}, headers=alice.headers
    )
    accepted = await client.post(
        f"/v1/invitations/{invited.json()['token']}/accept", headers=bob.headers
    )
    assert accepted.status_code == 200, accepted.text
    promoted = await client.patch(
        f"{base}/members/{bob.id}", json={"role": "owner"}, headers=alice.headers
    )
    assert promoted.status_code == 422, promoted.text
    assert promoted.json()["errors"][0]["field"] == "role"
    members = await client.get(f"{base}/members", headers=alice.headers)
    assert {m["email"]: m["role"] for m in members.json()["items"]} == {
        alice.email: "owner",
        bob.email: "viewer",
    }

    key = await client.post(
        "/v1/me/api-keys", json={"name": "ci", "role": "owner"}, headers=alice.headers
    )
    assert key.status_code == 422, key.text
    assert key.json()["errors"][0]["field"] == "role"
    assert await db.scalar(select(ApiKey.id)) is None


async def test_an_api_key_cannot_name_a_project_one_is_not_in(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    elsewhere = await create_project(client, bob, name="elsewhere")
    key = await client.post(
        "/v1/me/api-keys",
        json={"name": "ci", "project_id": elsewhere["id"]},
        headers=alice.headers,
    )
    assert key.status_code == 404, key.text
    assert key.json()["code"] == "project_not_found"
    assert await db.scalar(select(ApiKey.id)) is None


async def test_no_one_makes_themself_a_platform_admin(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    signup = await client.post(
        "/v1/auth/signup",
        json={
            "email": "eve@example.com",
            "password": "a-long-unusual-passphrase-42",
            "is_platform_admin": True,
        },
    )
    assert signup.status_code == 422, signup.text
    assert signup.json()["errors"][0]["field"] == "is_platform_admin"
    assert await db.scalar(select(User.id).where(User.email == "eve@example.com")) is None

    profile = await client.patch("/v1/me", json={"is_platform_admin": True}, headers=alice.headers)
    assert profile.status_code == 422, profile.text
    assert profile.json()["errors"][0]["field"] == "is_platform_admin"
    admin_route = await client.patch(
        f"/v1/admin/users/{alice.id}", json={"is_platform_admin": True}, headers=alice.headers
    )
    assert admin_route.status_code == 403, admin_route.text
    me = await client.get("/v1/me", headers=alice.headers)
    assert me.json()["is_platform_admin"] is False
    assert await db.scalar(select(User.is_platform_admin).where(User.id == alice.id)) is False
