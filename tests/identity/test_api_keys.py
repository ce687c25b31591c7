"""API keys: created once-shown, stored hashed, authenticating, revocable and limitable."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import NotFound
from lariba.identity.api_keys.secret import generate_api_key
from lariba.identity.api_keys.service import MAX_ACTIVE_API_KEYS
from lariba.identity.authn import current_principal
from lariba.identity.authz import load_project, scoped_projects
from lariba.identity.models import ApiKey, AuditEvent, Membership, Project, Role
from tests.fixtures.identity import TestUser, bearer

KEY_PATTERN = re.compile(r"^lrb_[0-9A-Za-z]{38}$")


async def create_key(client: httpx.AsyncClient, user: TestUser, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/me/api-keys", json={"name": "ci", **body}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created: dict[str, Any] = response.json()
    return created


async def add_project(db: AsyncSession, owner: TestUser, name: str) -> uuid.UUID:
    """A project owned by ``owner``, written directly (not through /v1/projects)."""
    project = Project(id=uuid.uuid4(), name=name)
    db.add(project)
    await db.flush()
    db.add(Membership(project_id=project.id, user_id=owner.id, role=Role.owner))
    await db.commit()
    return project.id


async def test_key_is_returned_once_and_only_its_hash_is_stored(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    created = await create_key(client, alice, name="  deploy  ")
    key = created["key"]
    assert KEY_PATTERN.match(key)
    assert created["name"] == "deploy"
    assert created["prefix"] == key[:10]
    assert created["project_id"] is None
    assert created["role"] is None
    assert created["expires_at"] is None
    assert created["last_used_at"] is None
    assert created["revoked_at"] is None

    row = (await db.scalars(select(ApiKey))).one()
    assert str(row.id) == created["id"]
    assert row.user_id == alice.id
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.prefix == key[:10]
    assert key not in {row.key_hash, row.prefix, row.name}

    listed = await client.get("/v1/me/api-keys", headers=alice.headers)
    shown = await client.get(f"/v1/me/api-keys/{created['id']}", headers=alice.headers)
    assert listed.status_code == shown.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    for body, text in ((listed.json()["items"][0], listed.text), (shown.json(), shown.text)):
        assert "key" not in body
        assert "key_hash" not in body
        assert key not in text
        assert row.key_hash not in text
        assert body["prefix"] == key[:10]


async def test_key_authenticates_and_records_last_use(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    created = await create_key(client, alice)
    me = await client.get("/v1/me", headers=bearer(created["key"]))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == alice.email
    row = (await db.scalars(select(ApiKey))).one()
    assert row.last_used_at is not None
    assert datetime.now(UTC) - row.last_used_at < timedelta(minutes=1)
    shown = await client.get(f"/v1/me/api-keys/{created['id']}", headers=alice.headers)
    assert shown.json()["last_used_at"] is not None


async def test_revoked_key_is_rejected_and_listed_as_revoked(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    created = await create_key(client, alice)
    revoked = await client.delete(f"/v1/me/api-keys/{created['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    me = await client.get("/v1/me", headers=bearer(created["key"]))
    assert me.status_code == 401
    assert me.json()["code"] == "invalid_api_key"
    row = (await db.scalars(select(ApiKey))).one()
    assert row.revoked_at is not None
    listed = (await client.get("/v1/me/api-keys", headers=alice.headers)).json()
    assert listed["items"][0]["revoked_at"] is not None
    again = await client.delete(f"/v1/me/api-keys/{created['id']}", headers=alice.headers)
    assert again.status_code == 204


async def test_create_and_revoke_are_audited_without_the_key(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    created = await create_key(client, alice, role="viewer")
    await client.delete(f"/v1/me/api-keys/{created['id']}", headers=alice.headers)
    await client.delete(f"/v1/me/api-keys/{created['id']}", headers=alice.headers)
    events = (
        await db.scalars(
            select(AuditEvent).where(AuditEvent.action.like("api_key.%")).order_by(AuditEvent.id)
        )
    ).all()
    assert [e.action for e in events] == ["api_key.create", "api_key.revoke"]
    for event in events:
        assert event.actor_type == "user"
        assert event.actor_id == alice.id
        assert event.target_type == "api_key"
        assert event.target_id == created["id"]
        assert event.outcome == "success"
        assert event.request_id
        assert created["key"] not in str(event.details)
    assert events[0].details["role"] == "viewer"
    assert events[0].details["prefix"] == created["prefix"]


async def test_expired_key_is_rejected(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    created = await create_key(
        client, alice, expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()
    )
    assert (await client.get("/v1/me", headers=bearer(created["key"]))).status_code == 200
    await db.execute(
        update(ApiKey)
        .where(ApiKey.id == uuid.UUID(created["id"]))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    me = await client.get("/v1/me", headers=bearer(created["key"]))
    assert me.status_code == 401
    assert me.json()["code"] == "api_key_expired"


async def test_malformed_and_unknown_keys_are_rejected(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    key = (await create_key(client, alice))["key"]
    last = key[-1]
    wrong_checksum = key[:-1] + ("A" if last != "A" else "B")
    for token in (wrong_checksum, key[:-1], generate_api_key()):
        me = await client.get("/v1/me", headers=bearer(token))
        assert me.status_code == 401, token
        assert me.json()["code"] == "invalid_api_key"
        assert token not in me.text


@pytest.mark.parametrize(
    ("expires_at", "code"),
    [
        (datetime.now(UTC) - timedelta(minutes=1), "expires_at_not_in_future"),
        (datetime.now(UTC) + timedelta(days=400), "expires_at_too_far"),
    ],
)
async def test_expiry_outside_the_allowed_range_is_422(
    client: httpx.AsyncClient,
    alice: TestUser,
    db: AsyncSession,
    expires_at: datetime,
    code: str,
) -> None:
    response = await client.post(
        "/v1/me/api-keys",
        json={"name": "ci", "expires_at": expires_at.isoformat()},
        headers=alice.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == code
    assert response.json()["errors"][0]["field"] == "expires_at"
    assert (await db.scalars(select(ApiKey))).all() == []


async def test_invalid_fields_are_named(client: httpx.AsyncClient, alice: TestUser) -> None:
    cases = [
        ({"name": "ci", "role": "owner"}, "role"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ci", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"name": "ci", "key": "lrb_mine"}, "key"),
    ]
    for body, field in cases:
        response = await client.post("/v1/me/api-keys", json=body, headers=alice.headers)
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_failed"
        assert [e["field"] for e in response.json()["errors"]] == [field], body


async def test_other_users_key_is_404(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    created = await create_key(client, alice)
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, f"/v1/me/api-keys/{created['id']}", headers=bob.headers
        )
        assert response.status_code == 404
        assert response.json()["code"] == "api_key_not_found"
    unknown = await client.get(f"/v1/me/api-keys/{uuid.uuid4()}", headers=alice.headers)
    assert unknown.json()["code"] == "api_key_not_found"
    assert (await client.get("/v1/me/api-keys", headers=bob.headers)).json()["items"] == []
    row = (await db.scalars(select(ApiKey))).one()
    assert row.revoked_at is None
    assert (await client.get("/v1/me", headers=bearer(created["key"]))).status_code == 200


async def test_api_key_cannot_manage_credentials(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    created = await create_key(client, alice)
    headers = bearer(created["key"])
    attempts = [
        ("POST", "/v1/me/api-keys", {"name": "escalate"}),
        ("GET", "/v1/me/api-keys", None),
        ("DELETE", f"/v1/me/api-keys/{created['id']}", None),
        ("GET", "/v1/me/mfa", None),
        ("POST", "/v1/me/mfa", {"password": alice.password}),
        ("POST", "/v1/me/mfa/confirm", {"code": "123456"}),
        ("POST", "/v1/me/mfa/recovery-codes", {"code": "123456"}),
        ("DELETE", "/v1/me/mfa", {"password": alice.password, "code": "123456"}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "interactive_login_required"
    rows = (await db.scalars(select(ApiKey))).all()
    assert [(r.name, r.revoked_at) for r in rows] == [("ci", None)]


async def test_list_is_paginated_and_holds_only_own_keys(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    ids = [(await create_key(client, alice, name=f"k{i}"))["id"] for i in range(3)]
    await create_key(client, bob, name="bobs")
    first = (await client.get("/v1/me/api-keys?limit=2", headers=alice.headers)).json()
    assert first["next_cursor"]
    second = (
        await client.get(
            "/v1/me/api-keys",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=alice.headers,
        )
    ).json()
    assert second["next_cursor"] is None
    assert [k["id"] for k in first["items"] + second["items"]] == ids


async def test_project_id_must_be_a_project_of_the_caller(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    bobs_project = await add_project(db, bob, "bobs")
    for project_id in (bobs_project, uuid.uuid4()):
        response = await client.post(
            "/v1/me/api-keys",
            json={"name": "ci", "project_id": str(project_id)},
            headers=alice.headers,
        )
        assert response.status_code == 404
        assert response.json()["code"] == "project_not_found"
    assert (await db.scalars(select(ApiKey))).all() == []


async def test_key_limited_to_a_project_and_capped_at_a_role(
    client: httpx.AsyncClient, app: FastAPI, alice: TestUser, db: AsyncSession
) -> None:
    """Checked on the principal that authn builds from the key and on authz's scoping,
    which every project-scoped route goes through."""
    project_a = await add_project(db, alice, "a")
    project_b = await add_project(db, alice, "b")
    limited = await create_key(client, alice, project_id=str(project_a), role="viewer")
    assert limited["project_id"] == str(project_a)
    assert limited["role"] == "viewer"
    row = await db.get(ApiKey, uuid.UUID(limited["id"]))
    assert row is not None
    assert (row.project_id, row.role) == (project_a, Role.viewer)

    principal = await current_principal(db, app.state.identity, limited["key"])
    assert (principal.project_limit, principal.role_limit) == (project_a, Role.viewer)
    visible = (await db.scalars(scoped_projects(principal, Project.id))).all()
    assert visible == [project_a]
    access = await load_project(db, principal, project_a)
    assert access.role is Role.viewer
    with pytest.raises(NotFound) as missing:
        await load_project(db, principal, project_b)
    assert missing.value.code == "project_not_found"

    capped = await create_key(client, alice, role="member")
    principal = await current_principal(db, app.state.identity, capped["key"])
    assert principal.project_limit is None
    visible = (await db.scalars(scoped_projects(principal, Project.id))).all()
    assert set(visible) == {project_a, project_b}
    assert (await load_project(db, principal, project_b)).role is Role.member

    unlimited = await create_key(client, alice)
    principal = await current_principal(db, app.state.identity, unlimited["key"])
    assert (await load_project(db, principal, project_b)).role is Role.owner


async def test_project_routes_honour_the_key_limits(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project_a = await add_project(db, alice, "a")
    project_b = await add_project(db, alice, "b")
    limited = bearer(
        (await create_key(client, alice, project_id=str(project_a), role="viewer"))["key"]
    )

    shown = await client.get(f"/v1/projects/{project_a}", headers=limited)
    assert shown.status_code == 200, shown.text
    assert shown.json()["role"] == "viewer"
    hidden = await client.get(f"/v1/projects/{project_b}", headers=limited)
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "project_not_found"
    renamed = await client.patch(
        f"/v1/projects/{project_a}", json={"name": "renamed"}, headers=limited
    )
    assert renamed.status_code == 403
    assert renamed.json()["code"] == "insufficient_role"
    assert renamed.json()["your_role"] == "viewer"

    capped = bearer((await create_key(client, alice, role="member"))["key"])
    assert (await client.get(f"/v1/projects/{project_b}", headers=capped)).json()["role"] == (
        "member"
    )
    refused = await client.patch(f"/v1/projects/{project_b}", json={"name": "x"}, headers=capped)
    assert refused.json()["code"] == "insufficient_role"

    names = (await db.scalars(select(Project.name).order_by(Project.name))).all()
    assert names == ["a", "b"]


async def test_active_keys_are_capped(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    db.add_all(
        ApiKey(
            user_id=alice.id,
            name=f"k{i}",
            prefix="lrb_xxxxxx",
            key_hash=hashlib.sha256(f"k{i}".encode()).hexdigest(),
        )
        for i in range(MAX_ACTIVE_API_KEYS - 1)
    )
    db.add(
        ApiKey(
            user_id=alice.id,
            name="old",
            prefix="lrb_xxxxxx",
            key_hash=hashlib.sha256(b"old").hexdigest(),
            expires_at=datetime.now(UTC) - timedelta(days=1),
        )
    )
    await db.commit()
    last = await create_key(client, alice, name="last")
    refused = await client.post("/v1/me/api-keys", json={"name": "one-more"}, headers=alice.headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "api_key_limit_reached"
    assert refused.json()["limit"] == MAX_ACTIVE_API_KEYS
    await client.delete(f"/v1/me/api-keys/{last['id']}", headers=alice.headers)
    await create_key(client, alice, name="one-more")
