"""Members of a project: listing, role changes, removal, leaving, and ownership transfer."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.models import AuditEvent, Membership, Role
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.identity.test_invitations import add_member


async def roles(db: AsyncSession, project_id: object) -> dict[uuid.UUID, Role]:
    db.expire_all()
    rows = await db.scalars(
        select(Membership).where(Membership.project_id == uuid.UUID(str(project_id)))
    )
    return {m.user_id: m.role for m in rows}


async def events(db: AsyncSession, action: str) -> list[AuditEvent]:
    return list(
        (
            await db.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        ).all()
    )


async def test_members_are_listed_with_profile_and_role(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, "viewer")
    response = await client.get(f"/v1/projects/{project['id']}/members", headers=bob.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert [(m["user_id"], m["email"], m["display_name"], m["role"]) for m in body["items"]] == [
        (str(alice.id), "alice@example.com", "Alice", "owner"),
        (str(bob.id), "bob@example.com", "Bob", "viewer"),
    ]
    assert all(m["joined_at"] for m in body["items"])


async def test_members_list_is_paginated_without_duplicates(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    project = await create_project(client, alice)
    others = [await sign_up(client) for _ in range(3)]
    for user in others:
        await add_member(client, alice, project["id"], user, "member")
    url = f"/v1/projects/{project['id']}/members"
    first = (await client.get(url, params={"limit": 1}, headers=alice.headers)).json()
    assert len(first["items"]) == 1
    assert first["next_cursor"]
    seen = [m["user_id"] for m in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (
            await client.get(url, params={"limit": 1, "cursor": cursor}, headers=alice.headers)
        ).json()
        seen += [m["user_id"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [str(alice.id)] + [str(u.id) for u in others]

    rest = (
        await client.get(
            url, params={"limit": 50, "cursor": first["next_cursor"]}, headers=alice.headers
        )
    ).json()
    assert [m["user_id"] for m in rest["items"]] == seen[1:]
    assert rest["next_cursor"] is None


async def test_invalid_cursor_is_422(client: httpx.AsyncClient, alice: TestUser) -> None:
    project = await create_project(client, alice)
    response = await client.get(
        f"/v1/projects/{project['id']}/members", params={"cursor": "garbage"}, headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


async def test_admin_changes_a_members_role(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    carol = await sign_up(client)
    await add_member(client, alice, project["id"], bob, "admin")
    await add_member(client, alice, project["id"], carol, "viewer")
    response = await client.patch(
        f"/v1/projects/{project['id']}/members/{carol.id}",
        json={"role": "member"},
        headers=bob.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "member"
    assert response.json()["email"] == carol.email
    assert (await roles(db, project["id"]))[carol.id] == Role.member
    [event] = await events(db, "member.role_change")
    assert (event.actor_id, event.target_id) == (bob.id, str(carol.id))
    assert event.details == {"from": "viewer", "to": "member"}
    assert event.project_id == uuid.UUID(project["id"])


async def test_owner_role_cannot_be_assigned(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, "member")
    response = await client.patch(
        f"/v1/projects/{project['id']}/members/{bob.id}",
        json={"role": "owner"},
        headers=alice.headers,
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "role"
    assert "transfer-ownership" in error["message"]
    assert (await roles(db, project["id"]))[bob.id] == Role.member


async def test_owners_role_is_locked(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, "admin")
    for actor in (bob, alice):
        response = await client.patch(
            f"/v1/projects/{project['id']}/members/{alice.id}",
            json={"role": "viewer"},
            headers=actor.headers,
        )
        assert response.status_code == 403
        assert response.json()["code"] == "owner_role_locked"
    assert (await roles(db, project["id"]))[alice.id] == Role.owner


async def test_unknown_member_is_404(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    project = await create_project(client, alice)
    for user_id in (bob.id, uuid.uuid4()):
        url = f"/v1/projects/{project['id']}/members/{user_id}"
        changed = await client.patch(url, json={"role": "viewer"}, headers=alice.headers)
        removed = await client.delete(url, headers=alice.headers)
        for response in (changed, removed):
            assert response.status_code == 404
            assert response.json()["code"] == "member_not_found"


async def test_member_update_refuses_other_fields(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    other = await create_project(client, alice, name="other")
    await add_member(client, alice, project["id"], bob, "viewer")
    response = await client.patch(
        f"/v1/projects/{project['id']}/members/{bob.id}",
        json={"role": "admin", "project_id": other["id"]},
        headers=alice.headers,
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["project_id"]
    assert await roles(db, project["id"]) == {alice.id: Role.owner, bob.id: Role.viewer}
    assert await roles(db, other["id"]) == {alice.id: Role.owner}


async def test_a_viewer_can_leave(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, "viewer")
    response = await client.delete(
        f"/v1/projects/{project['id']}/members/{bob.id}", headers=bob.headers
    )
    assert response.status_code == 204
    assert await roles(db, project["id"]) == {alice.id: Role.owner}
    [event] = await events(db, "member.leave")
    assert (event.actor_id, event.target_id) == (bob.id, str(bob.id))
    assert event.details == {"role": "viewer"}
    gone = await client.get(f"/v1/projects/{project['id']}", headers=bob.headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == "project_not_found"


async def test_admin_removes_a_member(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    carol = await sign_up(client)
    await add_member(client, alice, project["id"], bob, "admin")
    await add_member(client, alice, project["id"], carol, "member")
    response = await client.delete(
        f"/v1/projects/{project['id']}/members/{carol.id}", headers=bob.headers
    )
    assert response.status_code == 204
    assert carol.id not in await roles(db, project["id"])
    [event] = await events(db, "member.remove")
    assert (event.actor_id, event.target_id, event.project_id) == (
        bob.id,
        str(carol.id),
        uuid.UUID(project["id"]),
    )


async def test_owner_can_neither_leave_nor_be_removed(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, "admin")
    url = f"/v1/projects/{project['id']}/members/{alice.id}"
    for actor in (alice, bob):
        response = await client.delete(url, headers=actor.headers)
        assert response.status_code == 409
        assert response.json()["code"] == "owner_cannot_leave"
        assert "transfer" in response.json()["detail"]
    assert (await roles(db, project["id"]))[alice.id] == Role.owner


async def test_transfer_makes_the_member_owner_and_the_old_owner_admin(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, "viewer")
    response = await client.post(
        f"/v1/projects/{project['id']}/transfer-ownership",
        json={"user_id": str(bob.id)},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == project["id"]
    assert response.json()["role"] == "admin"
    assert await roles(db, project["id"]) == {alice.id: Role.admin, bob.id: Role.owner}
    [event] = await events(db, "project.transfer_ownership")
    assert (event.actor_id, event.target_id, event.project_id) == (
        alice.id,
        str(bob.id),
        uuid.UUID(project["id"]),
    )
    assert event.details == {
        "from_user_id": str(alice.id),
        "to_user_id": str(bob.id),
        "to_user_previous_role": "viewer",
    }

    shown = await client.get(f"/v1/projects/{project['id']}", headers=bob.headers)
    assert shown.json()["role"] == "owner"
    # The old owner is now an ordinary admin: no second transfer, and they may leave.
    refused = await client.post(
        f"/v1/projects/{project['id']}/transfer-ownership",
        json={"user_id": str(alice.id)},
        headers=alice.headers,
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_role"
    left = await client.delete(
        f"/v1/projects/{project['id']}/members/{alice.id}", headers=alice.headers
    )
    assert left.status_code == 204


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_only_the_owner_may_transfer(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession, role: str
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, role)
    response = await client.post(
        f"/v1/projects/{project['id']}/transfer-ownership",
        json={"user_id": str(bob.id)},
        headers=bob.headers,
    )
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_role"
    assert (await roles(db, project["id"]))[alice.id] == Role.owner
    assert await events(db, "project.transfer_ownership") == []


async def test_transfer_needs_an_existing_member(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    url = f"/v1/projects/{project['id']}/transfer-ownership"
    outsider = await client.post(url, json={"user_id": str(bob.id)}, headers=alice.headers)
    assert outsider.status_code == 404
    assert outsider.json()["code"] == "member_not_found"
    to_self = await client.post(url, json={"user_id": str(alice.id)}, headers=alice.headers)
    assert to_self.status_code == 422
    assert to_self.json()["code"] == "already_owner"
    assert await roles(db, project["id"]) == {alice.id: Role.owner}
