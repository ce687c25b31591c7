"""Platform administration: users, projects and the audit trail, for platform admins only."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.models import AuditEvent, AuthSession, User
from tests.fixtures.identity import TestUser, create_project, log_in, sign_up
from tests.identity.test_invitations import add_member


async def make_admin(db: AsyncSession, user: TestUser) -> TestUser:
    await db.execute(update(User).where(User.id == user.id).values(is_platform_admin=True))
    await db.commit()
    return user


@pytest.fixture
async def admin(client: httpx.AsyncClient, db: AsyncSession) -> TestUser:
    return await make_admin(db, await sign_up(client, email="root@example.com"))


async def test_non_admins_are_refused_everywhere(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    calls = [
        ("GET", "/v1/admin/users", None),
        ("PATCH", f"/v1/admin/users/{bob.id}", {"is_active": False}),
        ("GET", "/v1/admin/projects", None),
        ("GET", "/v1/admin/audit", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=alice.headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "platform_admin_required"
    bob_row = await db.get(User, bob.id)
    assert bob_row is not None
    assert bob_row.is_active


async def test_admin_lists_users_filtered_by_email(
    client: httpx.AsyncClient, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    everyone = await client.get("/v1/admin/users", headers=admin.headers)
    assert everyone.status_code == 200
    assert [u["email"] for u in everyone.json()["items"]] == [
        "root@example.com",
        "alice@example.com",
        "bob@example.com",
    ]
    root = everyone.json()["items"][0]
    assert root == {
        "id": str(admin.id),
        "email": "root@example.com",
        "display_name": None,
        "is_active": True,
        "is_platform_admin": True,
        "mfa_enabled": False,
        "created_at": root["created_at"],
    }
    found = await client.get("/v1/admin/users", params={"email": "ALI"}, headers=admin.headers)
    assert [u["id"] for u in found.json()["items"]] == [str(alice.id)]
    wildcard = await client.get("/v1/admin/users", params={"email": "%"}, headers=admin.headers)
    assert wildcard.json()["items"] == []

    first = await client.get("/v1/admin/users", params={"limit": 2}, headers=admin.headers)
    rest = await client.get(
        "/v1/admin/users",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=admin.headers,
    )
    assert [u["email"] for u in first.json()["items"] + rest.json()["items"]] == [
        u["email"] for u in everyone.json()["items"]
    ]


async def test_admin_lists_every_project_with_owner_and_member_count(
    client: httpx.AsyncClient, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    shop = await create_project(client, alice, name="shop")
    await add_member(client, alice, shop["id"], bob, "viewer")
    blog = await create_project(client, bob, name="blog")
    response = await client.get("/v1/admin/projects", headers=admin.headers)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(p["id"], p["name"], p["owner_email"], p["member_count"]) for p in items] == [
        (shop["id"], "shop", "alice@example.com", 2),
        (blog["id"], "blog", "bob@example.com", 1),
    ]
    assert items[0]["owner_id"] == str(alice.id)


async def test_admin_searches_the_audit_trail_newest_first(
    client: httpx.AsyncClient, admin: TestUser, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    shop = await create_project(client, alice, name="shop")
    blog = await create_project(client, bob, name="blog")
    await client.patch(f"/v1/projects/{shop['id']}", json={"name": "store"}, headers=alice.headers)

    everything = await client.get("/v1/admin/audit", headers=admin.headers)
    assert everything.status_code == 200
    ids = [e["id"] for e in everything.json()["items"]]
    assert ids == sorted(ids, reverse=True)
    assert everything.json()["items"][0]["action"] == "project.update"

    creates = await client.get(
        "/v1/admin/audit", params={"action": "project.create"}, headers=admin.headers
    )
    assert [e["project_id"] for e in creates.json()["items"]] == [blog["id"], shop["id"]]
    event = creates.json()["items"][1]
    assert set(event) == {
        "id",
        "occurred_at",
        "actor_type",
        "actor_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "project_id",
        "outcome",
        "client_ip",
        "request_id",
        "details",
    }
    assert (event["actor_type"], event["actor_id"], event["actor_label"]) == (
        "user",
        str(alice.id),
        "alice@example.com",
    )
    assert (event["target_type"], event["target_id"]) == ("project", shop["id"])
    assert (event["outcome"], event["client_ip"]) == ("success", "127.0.0.1")
    assert event["request_id"]
    assert event["details"] == {"name": "shop"}

    by_actor = await client.get(
        "/v1/admin/audit",
        params={"actor_id": str(alice.id), "project_id": shop["id"]},
        headers=admin.headers,
    )
    assert [e["action"] for e in by_actor.json()["items"]] == ["project.update", "project.create"]
    by_target = await client.get(
        "/v1/admin/audit", params={"target_id": blog["id"]}, headers=admin.headers
    )
    assert [e["action"] for e in by_target.json()["items"]] == ["project.create"]

    newest = (await db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))).one()
    after = await client.get(
        "/v1/admin/audit",
        params={"since": (newest.occurred_at + timedelta(seconds=1)).isoformat()},
        headers=admin.headers,
    )
    assert after.json()["items"] == []
    before = await client.get(
        "/v1/admin/audit",
        params={"until": (newest.occurred_at - timedelta(days=1)).isoformat()},
        headers=admin.headers,
    )
    assert before.json()["items"] == []
    window = await client.get(
        "/v1/admin/audit",
        params={
            "since": (newest.occurred_at - timedelta(days=1)).isoformat(),
            "until": (newest.occurred_at + timedelta(seconds=1)).isoformat(),
        },
        headers=admin.headers,
    )
    assert [e["id"] for e in window.json()["items"]] == ids
    naive = await client.get(
        "/v1/admin/audit", params={"since": "2026-01-01T00:00:00"}, headers=admin.headers
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "since"


async def test_audit_pages_go_from_newest_to_oldest(
    client: httpx.AsyncClient, admin: TestUser, alice: TestUser
) -> None:
    await create_project(client, alice)
    everything = (await client.get("/v1/admin/audit", headers=admin.headers)).json()["items"]
    assert len(everything) >= 3
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/admin/audit", params=params, headers=admin.headers)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in everything]
    foreign_cursor = await client.get("/v1/admin/users", params={"limit": 1}, headers=admin.headers)
    refused = await client.get(
        "/v1/admin/audit",
        params={"cursor": foreign_cursor.json()["next_cursor"]},
        headers=admin.headers,
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_cursor"


async def test_disabling_a_user_ends_their_sessions_and_logins(
    client: httpx.AsyncClient, admin: TestUser, alice: TestUser, db: AsyncSession
) -> None:
    assert (await client.get("/v1/me", headers=alice.headers)).status_code == 200
    response = await client.patch(
        f"/v1/admin/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False

    me = await client.get("/v1/me", headers=alice.headers)
    assert me.status_code == 401
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert refreshed.status_code == 401
    login = await log_in(client, alice.email, alice.password)
    assert login.status_code == 401
    assert login.json()["code"] == "invalid_credentials"

    sessions = (await db.scalars(select(AuthSession).where(AuthSession.user_id == alice.id))).all()
    assert sessions
    assert all(s.revoked_at is not None for s in sessions)
    assert {s.revoked_reason for s in sessions} == {"account_disabled"}
    event = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "admin.user_update"))
    ).one()
    assert (event.actor_id, event.target_id) == (admin.id, str(alice.id))
    assert event.details == {"changes": {"is_active": False}, "sessions_revoked": 1}

    enabled = await client.patch(
        f"/v1/admin/users/{alice.id}", json={"is_active": True}, headers=admin.headers
    )
    assert enabled.json()["is_active"] is True
    assert (await log_in(client, alice.email, alice.password)).status_code == 200


async def test_admin_grants_and_takes_platform_admin(
    client: httpx.AsyncClient, admin: TestUser, alice: TestUser, db: AsyncSession
) -> None:
    url = f"/v1/admin/users/{alice.id}"
    granted = await client.patch(url, json={"is_platform_admin": True}, headers=admin.headers)
    assert granted.json()["is_platform_admin"] is True
    assert (await client.get("/v1/admin/users", headers=alice.headers)).status_code == 200
    taken = await client.patch(url, json={"is_platform_admin": False}, headers=alice.headers)
    assert taken.status_code == 409
    taken = await client.patch(url, json={"is_platform_admin": False}, headers=admin.headers)
    assert taken.status_code == 200
    refused = await client.get("/v1/admin/users", headers=alice.headers)
    assert refused.status_code == 403
    row = await db.get(User, alice.id)
    assert row is not None
    assert not row.is_platform_admin


@pytest.mark.parametrize("change", [{"is_active": False}, {"is_platform_admin": False}])
async def test_admin_cannot_disable_or_demote_themself(
    client: httpx.AsyncClient, admin: TestUser, db: AsyncSession, change: dict[str, bool]
) -> None:
    response = await client.patch(f"/v1/admin/users/{admin.id}", json=change, headers=admin.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "cannot_change_self"
    row = await db.get(User, admin.id)
    assert row is not None
    assert (row.is_active, row.is_platform_admin) == (True, True)
    assert (await client.get("/v1/me", headers=admin.headers)).status_code == 200


async def test_user_update_errors(client: httpx.AsyncClient, admin: TestUser) -> None:
    missing = await client.patch(
        f"/v1/admin/users/{uuid.uuid4()}", json={"is_active": False}, headers=admin.headers
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "user_not_found"
    extra = await client.patch(
        f"/v1/admin/users/{admin.id}", json={"email": "x@example.com"}, headers=admin.headers
    )
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "email"


async def test_disabled_admin_loses_admin_access(
    client: httpx.AsyncClient, admin: TestUser, db: AsyncSession
) -> None:
    other = await make_admin(db, await sign_up(client))
    response = await client.patch(
        f"/v1/admin/users/{other.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    refused = await client.get("/v1/admin/users", headers=other.headers)
    assert refused.status_code == 401
    assert refused.json()["code"] in {"session_revoked", "account_disabled"}
