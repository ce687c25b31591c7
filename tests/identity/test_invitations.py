"""Invitations: shown once, stored hashed, e-mailed when SMTP is set, accepted once by the
invited address, replaced on re-invite, refused when expired or revoked."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.settings import Settings
from lariba.identity.api_keys.secret import generate_api_key, hash_api_key
from lariba.identity.models import ApiKey, AuditEvent, Invitation, Membership, Role
from tests.fixtures.identity import TestUser, bearer, create_project, sign_up


async def invite(
    client: httpx.AsyncClient,
    inviter: TestUser,
    project_id: object,
    email: str,
    *,
    role: str = "member",
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/projects/{project_id}/invitations",
        json={"email": email, "role": role},
        headers=inviter.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def accept(client: httpx.AsyncClient, user: TestUser, token: str) -> httpx.Response:
    return await client.post(f"/v1/invitations/{token}/accept", headers=user.headers)


async def add_member(
    client: httpx.AsyncClient, owner: TestUser, project_id: object, user: TestUser, role: str
) -> None:
    """Makes ``user`` a member with ``role`` the way people join: invited, then accepting."""
    invitation = await invite(client, owner, project_id, user.email, role=role)
    accepted = await accept(client, user, invitation["token"])
    assert accepted.status_code == 200, accepted.text


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_token_is_shown_once_and_only_its_hash_is_stored(
    client: httpx.AsyncClient, alice: TestUser, settings: Settings, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    created = await invite(client, alice, project["id"], "  Carol@Example.COM ", role="viewer")
    token = created["token"]
    assert len(token) >= 43
    assert created["email"] == "carol@example.com"
    assert created["role"] == "viewer"
    assert created["invited_by"] == str(alice.id)
    assert created["email_sent"] is False
    assert created["accept_url"] == f"{settings.base_url}/v1/invitations/{token}/accept"
    expires = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert expires == timedelta(seconds=settings.invitation_ttl_seconds)

    row = (await db.scalars(select(Invitation))).one()
    assert row.token_hash == sha256(token)
    assert token not in repr([getattr(row, c.key) for c in Invitation.__table__.columns])
    assert (row.email, row.role, row.invited_by) == ("carol@example.com", Role.viewer, alice.id)

    listed = await client.get(f"/v1/projects/{project['id']}/invitations", headers=alice.headers)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["id"] == created["id"]
    assert "token" not in item and "accept_url" not in item
    assert token not in listed.text

    event = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.create"))
    ).one()
    assert event.target_id == created["id"]
    assert event.project_id == uuid.UUID(project["id"])
    assert event.details == {"email": "carol@example.com", "role": "viewer", "emailed": False}
    assert token not in repr(event.details)


async def test_accepting_makes_the_invitee_a_member_with_the_invited_role(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice, name="shop")
    invitation = await invite(client, alice, project["id"], "BOB@example.com", role="admin")
    accepted = await accept(client, bob, invitation["token"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["id"] == project["id"]
    assert accepted.json()["name"] == "shop"
    assert accepted.json()["role"] == "admin"

    membership = await db.get(Membership, (uuid.UUID(project["id"]), bob.id))
    assert membership is not None
    assert membership.role == Role.admin
    row = await db.get(Invitation, uuid.UUID(invitation["id"]))
    assert row is not None
    assert row.accepted_by == bob.id
    assert row.accepted_at is not None
    event = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.accept"))
    ).one()
    assert (event.actor_id, event.outcome, event.target_id) == (bob.id, "success", str(row.id))
    assert event.project_id == row.project_id

    shown = await client.get(f"/v1/projects/{project['id']}", headers=bob.headers)
    assert shown.status_code == 200
    assert shown.json()["role"] == "admin"
    pending = await client.get(f"/v1/projects/{project['id']}/invitations", headers=alice.headers)
    assert pending.json()["items"] == []


async def test_second_accept_of_the_same_token_is_404(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await invite(client, alice, project["id"], bob.email)
    assert (await accept(client, bob, invitation["token"])).status_code == 200
    again = await accept(client, bob, invitation["token"])
    assert again.status_code == 404
    assert again.json()["code"] == "invitation_not_found"
    assert len((await db.scalars(select(Membership))).all()) == 2


async def test_concurrent_accepts_let_only_one_through(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await invite(client, alice, project["id"], bob.email)
    results = await asyncio.gather(*(accept(client, bob, invitation["token"]) for _ in range(4)))
    assert sorted(r.status_code for r in results) == [200, 404, 404, 404]
    members = (await db.scalars(select(Membership).where(Membership.user_id == bob.id))).all()
    assert len(members) == 1
    accepted = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.accept"))
    ).all()
    assert len(accepted) == 1


async def test_expired_invitation_is_404(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await invite(client, alice, project["id"], bob.email)
    await db.execute(
        update(Invitation)
        .where(Invitation.id == uuid.UUID(invitation["id"]))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    response = await accept(client, bob, invitation["token"])
    assert response.status_code == 404
    assert response.json()["code"] == "invitation_not_found"
    assert await db.get(Membership, (uuid.UUID(project["id"]), bob.id)) is None
    listed = await client.get(f"/v1/projects/{project['id']}/invitations", headers=alice.headers)
    assert listed.json()["items"] == []


async def test_unknown_token_is_404(client: httpx.AsyncClient, bob: TestUser) -> None:
    response = await accept(client, bob, "not-a-token-anyone-was-given")
    assert response.status_code == 404
    assert response.json()["code"] == "invitation_not_found"


async def test_accepting_as_another_address_is_403_and_audited(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await invite(client, alice, project["id"], "carol@example.com")
    response = await accept(client, bob, invitation["token"])
    assert response.status_code == 403
    assert response.json()["code"] == "invitation_email_mismatch"
    assert await db.get(Membership, (uuid.UUID(project["id"]), bob.id)) is None
    row = await db.get(Invitation, uuid.UUID(invitation["id"]))
    assert row is not None
    assert row.accepted_at is None
    denied = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.accept"))
    ).one()
    assert (denied.outcome, denied.actor_id) == ("denied", bob.id)
    assert denied.details == {"reason": "email_mismatch"}

    carol = await sign_up(client, email="Carol@example.com")
    assert (await accept(client, carol, invitation["token"])).status_code == 200


async def test_inviting_a_member_is_409(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    await add_member(client, alice, project["id"], bob, "viewer")
    for email in (bob.email, "ALICE@example.com"):
        response = await client.post(
            f"/v1/projects/{project['id']}/invitations",
            json={"email": email},
            headers=alice.headers,
        )
        assert response.status_code == 409, email
        assert response.json()["code"] == "already_member"
    assert len((await db.scalars(select(Invitation))).all()) == 1


async def test_accepting_when_already_a_member_is_409(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await invite(client, alice, project["id"], bob.email)
    db.add(Membership(project_id=uuid.UUID(project["id"]), user_id=bob.id, role=Role.viewer))
    await db.commit()
    response = await accept(client, bob, invitation["token"])
    assert response.status_code == 409
    assert response.json()["code"] == "already_member"


async def test_reinviting_revokes_the_older_invitation(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    first = await invite(client, alice, project["id"], bob.email, role="viewer")
    second = await invite(client, alice, project["id"], "Bob@Example.com", role="admin")
    assert first["token"] != second["token"]

    listed = await client.get(f"/v1/projects/{project['id']}/invitations", headers=alice.headers)
    assert [i["id"] for i in listed.json()["items"]] == [second["id"]]
    old = await db.get(Invitation, uuid.UUID(first["id"]))
    assert old is not None
    assert old.revoked_at is not None
    revoked = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.revoke"))
    ).one()
    assert revoked.target_id == first["id"]
    assert revoked.details["reason"] == "reinvited"

    stale = await accept(client, bob, first["token"])
    assert stale.status_code == 404
    assert stale.json()["code"] == "invitation_not_found"
    fresh = await accept(client, bob, second["token"])
    assert fresh.status_code == 200
    assert fresh.json()["role"] == "admin"


async def test_concurrent_reinvites_leave_one_pending_invitation(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    results = await asyncio.gather(
        *(invite(client, alice, project["id"], "carol@example.com") for _ in range(4))
    )
    pending = (await db.scalars(select(Invitation).where(Invitation.revoked_at.is_(None)))).all()
    assert len(pending) == 1
    assert str(pending[0].id) in {r["id"] for r in results}
    assert len((await db.scalars(select(Invitation))).all()) == 4


async def test_revoked_invitation_cannot_be_accepted(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await invite(client, alice, project["id"], bob.email)
    url = f"/v1/projects/{project['id']}/invitations/{invitation['id']}"
    revoked = await client.delete(url, headers=alice.headers)
    assert revoked.status_code == 204
    row = await db.get(Invitation, uuid.UUID(invitation["id"]))
    assert row is not None
    assert row.revoked_at is not None
    event = (
        await db.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.revoke"))
    ).one()
    assert (event.actor_id, event.target_id) == (alice.id, invitation["id"])

    assert (await accept(client, bob, invitation["token"])).status_code == 404
    again = await client.delete(url, headers=alice.headers)
    assert again.status_code == 404
    assert again.json()["code"] == "invitation_not_found"


async def test_invitation_of_another_project_cannot_be_revoked_through_mine(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    mine = await create_project(client, alice, name="mine")
    theirs = await create_project(client, bob, name="theirs")
    invitation = await invite(client, bob, theirs["id"], "carol@example.com")
    response = await client.delete(
        f"/v1/projects/{mine['id']}/invitations/{invitation['id']}", headers=alice.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "invitation_not_found"
    row = await db.get(Invitation, uuid.UUID(invitation["id"]))
    assert row is not None
    assert row.revoked_at is None


async def test_pending_list_is_paginated(client: httpx.AsyncClient, alice: TestUser) -> None:
    project = await create_project(client, alice)
    created = [
        (await invite(client, alice, project["id"], f"guest{i}@example.com"))["id"]
        for i in range(3)
    ]
    url = f"/v1/projects/{project['id']}/invitations"
    first = (await client.get(url, params={"limit": 2}, headers=alice.headers)).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = (
        await client.get(
            url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=alice.headers
        )
    ).json()
    assert rest["next_cursor"] is None
    assert [i["id"] for i in first["items"] + rest["items"]] == created


@pytest.mark.parametrize("role", ["owner", "superuser"])
async def test_invitation_role_must_be_assignable(
    client: httpx.AsyncClient, alice: TestUser, role: str
) -> None:
    project = await create_project(client, alice)
    response = await client.post(
        f"/v1/projects/{project['id']}/invitations",
        json={"email": "carol@example.com", "role": role},
        headers=alice.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "role"


async def test_accepting_needs_a_logged_in_person_not_an_api_key(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await invite(client, alice, project["id"], bob.email)
    key = generate_api_key()
    db.add(ApiKey(user_id=bob.id, name="ci", prefix=key[:10], key_hash=hash_api_key(key)))
    await db.commit()
    response = await client.post(
        f"/v1/invitations/{invitation['token']}/accept", headers=bearer(key)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "interactive_login_required"
    assert await db.get(Membership, (uuid.UUID(project["id"]), bob.id)) is None


@dataclass
class SmtpSink:
    """A minimal SMTP server on 127.0.0.1 that keeps the messages it is sent."""

    port: int = 0
    messages: list[bytes] = field(default_factory=list)


async def _serve_smtp(
    sink: SmtpSink, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    async def reply(line: str) -> None:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    await reply("220 sink ESMTP")
    while line := await reader.readline():
        command = line.decode().strip().upper()
        if command.startswith(("EHLO", "HELO")):
            await reply("250 sink")
        elif command.startswith(("MAIL FROM", "RCPT TO", "RSET", "NOOP")):
            await reply("250 OK")
        elif command == "DATA":
            await reply("354 End data with <CR><LF>.<CR><LF>")
            data = await reader.readuntil(b"\r\n.\r\n")
            sink.messages.append(data[: -len(b"\r\n.\r\n")].replace(b"\r\n..", b"\r\n."))
            await reply("250 OK queued")
        elif command == "QUIT":
            await reply("221 Bye")
            break
        else:
            await reply("502 Command not implemented")
    writer.close()


@asynccontextmanager
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    server = await asyncio.start_server(
        lambda r, w: _serve_smtp(sink, r, w), host="127.0.0.1", port=0
    )
    sink.port = server.sockets[0].getsockname()[1]
    async with server:
        yield sink


async def test_with_smtp_the_token_is_emailed_and_not_returned(
    make_client: Callable[..., Any], db: AsyncSession, settings: Settings
) -> None:
    async with (
        smtp_sink() as sink,
        make_client(
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_starttls=False,
            smtp_from="lariba@example.com",
        ) as mailing,
    ):
        alice = await sign_up(mailing, email="alice@example.com")
        project = await create_project(mailing, alice, name="shop")
        response = await mailing.post(
            f"/v1/projects/{project['id']}/invitations",
            json={"email": "Bob@Example.com", "role": "viewer"},
            headers=alice.headers,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["email_sent"] is True
        assert body["token"] is None
        assert body["accept_url"] is None

        [raw] = sink.messages
        message = message_from_bytes(raw, policy=policy.default)
        assert message["To"] == "bob@example.com"
        assert message["From"] == "lariba@example.com"
        assert "shop" in message["Subject"]
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        prefix = f"{settings.base_url}/v1/invitations/"
        start = text.index(prefix) + len(prefix)
        token = text[start : text.index("/accept", start)]
        row = (await db.scalars(select(Invitation))).one()
        assert row.token_hash == sha256(token)
        assert token not in response.text

        bob = await sign_up(mailing, email="bob@example.com")
        accepted = await mailing.post(f"/v1/invitations/{token}/accept", headers=bob.headers)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["role"] == "viewer"


async def test_when_the_email_cannot_be_sent_no_invitation_is_kept(
    make_client: Callable[..., Any], db: AsyncSession
) -> None:
    async with smtp_sink() as sink:
        closed_port = sink.port
    async with make_client(smtp_host="127.0.0.1", smtp_port=closed_port) as mailing:
        alice = await sign_up(mailing, email="alice@example.com")
        project = await create_project(mailing, alice)
        response = await mailing.post(
            f"/v1/projects/{project['id']}/invitations",
            json={"email": "bob@example.com"},
            headers=alice.headers,
        )
    assert response.status_code == 503
    assert response.json()["code"] == "email_delivery_failed"
    assert (await db.scalars(select(Invitation))).all() == []
