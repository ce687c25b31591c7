"""Tenant isolation, generated from the app's route table: every route under
/v1/projects/{project_id} answers another tenant's project exactly like a missing one (404,
nothing changed), and every /v1 route but sign-up and login needs credentials.

The table comes from the OpenAPI document, not ``app.routes``: since FastAPI 0.137
``include_router`` leaves one opaque entry per router in ``app.routes``, so a loop over it
would find no route and check nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.models import Invitation, Membership, Project
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.routes import Operation, operations

# Routes anyone may call: they are how one gets credentials, or (objects at the local
# provider's signed URLs) the signature in the URL is the credential.
PUBLIC = {
    ("POST", "/v1/auth/signup"),
    ("POST", "/v1/auth/token"),
    ("POST", "/v1/auth/refresh"),
    ("GET", "/v1/storage/{bucket_id}/{key}"),
    ("HEAD", "/v1/storage/{bucket_id}/{key}"),
    ("PUT", "/v1/storage/{bucket_id}/{key}"),
}


async def project_snapshot(db: AsyncSession, project_id: object) -> tuple[Any, ...]:
    """The project's row, its memberships and its invitations, as plain tuples."""
    pid = uuid.UUID(str(project_id))
    project = (await db.execute(select(Project.__table__).where(Project.id == pid))).all()
    memberships = (
        await db.execute(
            select(Membership.__table__)
            .where(Membership.project_id == pid)
            .order_by(Membership.user_id)
        )
    ).all()
    invitations = (
        await db.execute(
            select(Invitation.__table__).where(Invitation.project_id == pid).order_by(Invitation.id)
        )
    ).all()
    return tuple(project), tuple(memberships), tuple(invitations)


def project_scoped(app: FastAPI) -> list[Operation]:
    """Routes a project member reaches by project id. Platform admin routes are not
    among them: they answer 403 to anyone else, whatever the project."""
    return [
        op
        for op in operations(app)
        if "{project_id}" in op.path and not op.path.startswith("/v1/admin/")
    ]


def plausible_body(app: FastAPI, op: Operation, values: dict[str, Any]) -> dict[str, Any] | None:
    """A body the route would accept from a member: known fields get realistic values."""
    if not op.has_json_body or op.body_schema is None:
        return None
    schema = op.body_schema
    if "$ref" in schema:
        schema = app.openapi()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    return {
        name: values.get(name, "x") for name in properties if name in values or name in required
    }


async def test_project_scoped_routes_cover_members_invitations_and_transfer(
    app: FastAPI,
) -> None:
    paths = {op.path for op in project_scoped(app)}
    assert "/v1/projects/{project_id}" in paths
    assert any("/members" in p for p in paths)
    assert any("/invitations" in p for p in paths)
    assert any(p.endswith("/transfer-ownership") for p in paths)


async def test_another_tenants_project_is_404_on_every_route(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: TestUser,
    bob: TestUser,
    db: AsyncSession,
) -> None:
    victim = await create_project(client, alice, name="victim")
    invitation = await client.post(
        f"/v1/projects/{victim['id']}/invitations",
        json={"email": bob.email, "role": "viewer"},
        headers=alice.headers,
    )
    accepted = await client.post(
        f"/v1/invitations/{invitation.json()['token']}/accept", headers=bob.headers
    )
    assert accepted.status_code == 200
    pending = await client.post(
        f"/v1/projects/{victim['id']}/invitations",
        json={"email": "carol@example.com"},
        headers=alice.headers,
    )
    outsider = await sign_up(client, email="mallory@example.com")
    await create_project(client, outsider, name="mallorys")

    path_values = {
        "project_id": victim["id"],
        "user_id": bob.id,
        "invitation_id": pending.json()["id"],
    }
    body_values = {
        "name": "taken over",
        "description": "pwned",
        "role": "admin",
        "email": outsider.email,
        "user_id": str(outsider.id),
    }
    before = await project_snapshot(db, victim["id"])
    checked = []
    for op in project_scoped(app):
        response = await client.request(
            op.method,
            op.url(**path_values),
            json=plausible_body(app, op, body_values),
            headers=outsider.headers,
        )
        assert response.status_code == 404, (op.method, op.path, response.text)
        assert response.json()["code"] == "project_not_found", (op.method, op.path)
        checked.append((op.method, op.path))
        assert await project_snapshot(db, victim["id"]) == before, (op.method, op.path)
    assert len(checked) >= 9

    # The same answer as for a project that does not exist at all.
    missing = await client.get(f"/v1/projects/{uuid.uuid4()}", headers=outsider.headers)
    foreign = await client.get(f"/v1/projects/{victim['id']}", headers=outsider.headers)
    assert missing.status_code == foreign.status_code == 404
    assert missing.json()["code"] == foreign.json()["code"] == "project_not_found"
    assert (await client.get(f"/v1/projects/{victim['id']}", headers=alice.headers)).json()[
        "name"
    ] == "victim"


async def test_every_v1_route_needs_credentials(app: FastAPI, client: httpx.AsyncClient) -> None:
    v1 = [op for op in operations(app) if op.path.startswith("/v1/")]
    assert {(op.method, op.path) for op in v1} >= PUBLIC, "the public list names a gone route"
    checked = 0
    for op in v1:
        if (op.method, op.path) in PUBLIC:
            continue
        response = await client.request(op.method, op.url())
        assert response.status_code == 401, (op.method, op.path, response.text)
        assert response.json()["code"] == "unauthorized"
        checked += 1
    assert checked >= 20
