"""Projects: creation, listing, reading, renaming and deletion; who may do what (the role
matrix); and the whole story from sign-up to a read-only teammate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.api_keys.secret import generate_api_key, hash_api_key
from lariba.identity.models import ApiKey, AuditEvent, Invitation, Membership, Project, Role
from tests.fixtures.identity import DEFAULT_PASSWORD, TestUser, bearer, create_project, log_in
from tests.fixtures.identity import sign_up as sign_up_user
from tests.identity.test_invitations import accept, add_member, invite
from tests.identity.test_tenant_isolation import project_snapshot


async def api_key(
    db: AsyncSession, user: TestUser, *, project_id: object = None, role: Role | None = None
) -> dict[str, str]:
    key = generate_api_key()
    db.add(
        ApiKey(
            user_id=user.id,
            name="ci",
            prefix=key[:10],
            key_hash=hash_api_key(key),
            project_id=uuid.UUID(str(project_id)) if project_id else None,
            role=role,
        )
    )
    await db.commit()
    return bearer(key)


async def test_creating_a_project_makes_the_creator_its_owner(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    response = await client.post(
        "/v1/projects",
        json={"name": "  web shop ", "description": "The storefront"},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "web shop"
    assert body["description"] == "The storefront"
    assert body["role"] == "owner"
    assert body["created_at"] and body["updated_at"]

    project = await db.get(Project, uuid.UUID(body["id"]))
    assert project is not None
    assert (project.name, project.description) == ("web shop", "The storefront")
    [membership] = (await db.scalars(select(Membership))).all()
    assert (membership.project_id, membership.user_id, membership.role) == (
        project.id,
        alice.id,
        Role.owner,
    )
    event = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "project.create"))
    ).one()
    assert (event.actor_id, event.project_id, event.target_id) == (
        alice.id,
        project.id,
        str(project.id),
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        # The length is what was sent, as the schema's maxLength says, spaces included.
        ({"name": " " + "x" * 100}, "name"),
        ({"name": "ok", "description": " " + "d" * 1000}, "description"),
        ({}, "name"),
        ({"name": "ok", "description": "d" * 1001}, "description"),
    ],
)
async def test_invalid_project_fields_are_named(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/projects", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await db.scalar(select(func.count()).select_from(Project)) == 0


async def test_surrounding_spaces_are_removed_from_names(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    response = await client.post(
        "/v1/projects", json={"name": "  shop  ", "description": " d "}, headers=alice.headers
    )
    assert response.status_code == 201, response.text
    assert (response.json()["name"], response.json()["description"]) == ("shop", "d")
    assert await db.scalar(select(Project.name)) == "shop"
    blank = await client.post("/v1/projects", json={"name": "   "}, headers=alice.headers)
    assert blank.json()["errors"][0]["message"] == "must not be blank"


@pytest.mark.parametrize(
    "extra",
    [
        {"role": "admin"},
        {"owner": "00000000-0000-0000-0000-000000000001"},
        {"id": str(uuid.uuid4())},
    ],
)
async def test_create_refuses_mass_assignment(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, extra: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/projects", json={"name": "web", **extra}, headers=alice.headers
    )
    assert response.status_code == 422
    [field] = extra
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert field in response.json()["detail"]
    assert await db.scalar(select(func.count()).select_from(Project)) == 0


async def test_api_key_limited_to_a_project_cannot_create_projects(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice, name="limited")
    await create_project(client, alice, name="hidden")
    limited = await api_key(db, alice, project_id=project["id"])
    response = await client.post("/v1/projects", json={"name": "sneaky"}, headers=limited)
    assert response.status_code == 403
    assert response.json()["code"] == "api_key_project_limited"
    assert await db.scalar(select(func.count()).select_from(Project)) == 2

    listed = await client.get("/v1/projects", headers=limited)
    assert [p["name"] for p in listed.json()["items"]] == ["limited"]

    unlimited = await api_key(db, alice, role=Role.member)
    created = await client.post("/v1/projects", json={"name": "by key"}, headers=unlimited)
    assert created.status_code == 201
    assert created.json()["role"] == "member"  # owner, capped by the key


async def test_list_shows_only_my_projects_page_by_page(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    mine = [await create_project(client, alice, name=f"p{i}") for i in range(3)]
    shared = await create_project(client, bob, name="bobs shared")
    await create_project(client, bob, name="bobs private")
    await add_member(client, bob, shared["id"], alice, "viewer")

    first = await client.get("/v1/projects", params={"limit": 2}, headers=alice.headers)
    assert first.status_code == 200
    assert len(first.json()["items"]) == 2
    rest = await client.get(
        "/v1/projects",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=alice.headers,
    )
    assert rest.json()["next_cursor"] is None
    items = first.json()["items"] + rest.json()["items"]
    assert [(p["id"], p["role"]) for p in items] == [(p["id"], "owner") for p in mine] + [
        (shared["id"], "viewer")
    ]


async def test_listing_projects_reads_them_in_one_query(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser
) -> None:
    for i in range(3):
        await create_project(client, alice, name=f"p{i}")
    statements: list[str] = []

    def remember(*args: Any) -> None:
        statements.append(args[2])

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        response = await client.get("/v1/projects", headers=alice.headers)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert [p["name"] for p in response.json()["items"]] == ["p0", "p1", "p2"]
    assert len([s for s in statements if "projects" in s]) == 1, statements


async def test_get_project(client: httpx.AsyncClient, alice: TestUser) -> None:
    project = await create_project(client, alice, name="web")
    response = await client.get(f"/v1/projects/{project['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == project
    missing = await client.get(f"/v1/projects/{uuid.uuid4()}", headers=alice.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "project_not_found"


async def test_update_project(client: httpx.AsyncClient, alice: TestUser, db: AsyncSession) -> None:
    created = await client.post(
        "/v1/projects", json={"name": "web", "description": "old"}, headers=alice.headers
    )
    project = created.json()
    url = f"/v1/projects/{project['id']}"
    renamed = await client.patch(url, json={"name": " shop "}, headers=alice.headers)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["description"]) == ("shop", "old")
    assert renamed.json()["updated_at"] > project["updated_at"]
    cleared = await client.patch(url, json={"description": None}, headers=alice.headers)
    assert cleared.json()["description"] is None
    no_name = await client.patch(url, json={"name": None}, headers=alice.headers)
    assert no_name.status_code == 422
    assert no_name.json()["errors"][0]["field"] == "name"

    row = await db.get(Project, uuid.UUID(project["id"]))
    assert row is not None
    assert (row.name, row.description) == ("shop", None)
    changes = (
        await db.scalars(
            select(AuditEvent.details)
            .where(AuditEvent.action == "project.update")
            .order_by(AuditEvent.id)
        )
    ).all()
    assert changes == [{"changed": ["name"]}, {"changed": ["description"]}]


async def test_delete_project_removes_its_memberships_and_invitations(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    keep = await create_project(client, alice, name="keep")
    await add_member(client, alice, project["id"], bob, "admin")
    await invite(client, alice, project["id"], "carol@example.com")
    response = await client.delete(f"/v1/projects/{project['id']}", headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""

    project_id = uuid.UUID(project["id"])
    assert await db.get(Project, project_id) is None
    assert (
        await db.scalars(select(Membership).where(Membership.project_id == project_id))
    ).all() == []
    assert (
        await db.scalars(select(Invitation).where(Invitation.project_id == project_id))
    ).all() == []
    assert await db.get(Project, uuid.UUID(keep["id"])) is not None
    event = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "project.delete"))
    ).one()
    assert (event.actor_id, event.project_id) == (alice.id, project_id)
    gone = await client.get(f"/v1/projects/{project['id']}", headers=bob.headers)
    assert gone.status_code == 404


async def test_story_from_signup_to_a_read_only_teammate(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    signed_up = await client.post(
        "/v1/auth/signup", json={"email": "dana@example.com", "password": DEFAULT_PASSWORD}
    )
    assert signed_up.status_code == 201
    token = await log_in(client, "dana@example.com", DEFAULT_PASSWORD)
    assert token.status_code == 200
    dana = bearer(token.json()["access_token"])
    created = await client.post("/v1/projects", json={"name": "analytics"}, headers=dana)
    assert created.status_code == 201
    project = created.json()
    base = f"/v1/projects/{project['id']}"

    erin = await sign_up_user(client, email="erin@example.com")
    invited = await client.post(
        f"{base}/invitations", json={"email": "erin@example.com", "role": "viewer"}, headers=dana
    )
    assert invited.status_code == 201
    accepted = await accept(client, erin, invited.json()["token"])
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "viewer"

    for path in (base, f"{base}/members"):
        read = await client.get(path, headers=erin.headers)
        assert read.status_code == 200, path
    dana_id = signed_up.json()["id"]
    pending = await client.post(
        f"{base}/invitations", json={"email": "frank@example.com"}, headers=dana
    )
    before = await project_snapshot(db, project["id"])
    refused = [
        ("PATCH", base, {"name": "mine now"}),
        ("DELETE", base, None),
        ("PATCH", f"{base}/members/{dana_id}", {"role": "viewer"}),
        ("DELETE", f"{base}/members/{dana_id}", None),
        ("POST", f"{base}/invitations", {"email": "mallory@example.com", "role": "admin"}),
        ("GET", f"{base}/invitations", None),
        ("DELETE", f"{base}/invitations/{pending.json()['id']}", None),
        ("POST", f"{base}/transfer-ownership", {"user_id": str(erin.id)}),
    ]
    for method, path, body in refused:
        response = await client.request(method, path, json=body, headers=erin.headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "insufficient_role"
        assert response.json()["your_role"] == "viewer"
    assert await project_snapshot(db, project["id"]) == before

    outsider = await sign_up_user(client, email="oscar@example.com")
    await create_project(client, outsider, name="oscars")
    reads = [("GET", base, None), ("GET", f"{base}/members", None)]
    for method, path, body in reads + refused:
        response = await client.request(method, path, json=body, headers=outsider.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "project_not_found"
    assert await project_snapshot(db, project["id"]) == before


@dataclass(frozen=True)
class World:
    """A fresh project with one member of each role, a target member and a pending
    invitation: every mutating route can be tried once on it."""

    project_id: str
    target: TestUser
    invitation_id: str


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # formatted with the World's fields and ``me`` (the caller's user id)
    body: dict[str, Any] | None
    # Expected status for owner, admin, member, viewer.
    expected: tuple[int, int, int, int]


ROLES = ("owner", "admin", "member", "viewer")
MATRIX = [
    #    route                                     owner admin member viewer
    Case("rename", "PATCH", "", {"name": "renamed"}, (200, 200, 403, 403)),
    Case("delete project", "DELETE", "", None, (204, 403, 403, 403)),
    Case("change role", "PATCH", "/members/{target}", {"role": "member"}, (200, 200, 403, 403)),
    Case("remove member", "DELETE", "/members/{target}", None, (204, 204, 403, 403)),
    Case("leave", "DELETE", "/members/{me}", None, (409, 204, 204, 204)),
    Case("transfer", "POST", "/transfer-ownership", {"user_id": "{target}"}, (200, 403, 403, 403)),
    Case("invite", "POST", "/invitations", {"email": "new@example.com"}, (201, 201, 403, 403)),
    Case("list invitations", "GET", "/invitations", None, (200, 200, 403, 403)),
    Case("revoke invitation", "DELETE", "/invitations/{invitation}", None, (204, 204, 403, 403)),
]


@pytest.mark.parametrize("case", MATRIX, ids=lambda case: case.name)
async def test_role_matrix(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, case: Case
) -> None:
    members = {role: await sign_up_user(client) for role in ROLES[1:]}
    target = await sign_up_user(client)
    for role, expected in zip(ROLES, case.expected, strict=True):
        project = await create_project(client, alice)
        for member_role, user in members.items():
            await add_member(client, alice, project["id"], user, member_role)
        await add_member(client, alice, project["id"], target, "viewer")
        invitation = await invite(client, alice, project["id"], "pending@example.com")
        caller = alice if role == "owner" else members[role]
        values = {"target": target.id, "invitation": invitation["id"], "me": caller.id}
        path = f"/v1/projects/{project['id']}" + case.path.format(**values)
        body = {k: v.format(**values) for k, v in case.body.items()} if case.body else None
        before = await project_snapshot(db, project["id"])
        response = await client.request(case.method, path, json=body, headers=caller.headers)
        assert response.status_code == expected, (role, response.text)
        if expected == 403:
            assert response.json()["code"] == "insufficient_role"
        if expected >= 400 or case.method == "GET":
            assert await project_snapshot(db, project["id"]) == before, role
        else:
            assert await project_snapshot(db, project["id"]) != before, role
