"""Refresh rotation with reuse detection, logout and password change."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.settings import Settings
from lariba.identity.models import AuditEvent, AuthSession, RefreshToken
from tests.fixtures.app import running_client
from tests.fixtures.identity import TestUser, bearer, log_in


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_the_refresh_token(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    first = await _refresh(client, alice.refresh_token)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["refresh_token"] != alice.refresh_token
    assert body["token_type"] == "bearer"
    assert (await client.get("/v1/me", headers=bearer(body["access_token"]))).status_code == 200
    second = await _refresh(client, body["refresh_token"])
    assert second.status_code == 200
    tokens = (await db.scalars(select(RefreshToken).order_by(RefreshToken.issued_at))).all()
    assert len(tokens) == 3
    assert [t.used_at is not None for t in tokens] == [True, True, False]
    assert len({t.session_id for t in tokens}) == 1


async def test_reused_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    rotated = (await _refresh(client, alice.refresh_token)).json()
    reuse = await _refresh(client, alice.refresh_token)
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "refresh_token_reused"
    # The legitimate holder's newer tokens die with the family.
    newer = await _refresh(client, rotated["refresh_token"])
    assert newer.status_code == 401
    assert newer.json()["code"] == "session_revoked"
    me = await client.get("/v1/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 401
    session = (await db.scalars(select(AuthSession))).one()
    assert session.revoked_reason == "refresh_token_reuse"
    event = (
        await db.scalars(
            select(AuditEvent).where(AuditEvent.action == "auth.refresh_reuse_detected")
        )
    ).one()
    assert event.outcome == "denied"
    assert event.target_id == str(session.id)


async def test_reuse_in_one_family_leaves_other_sessions_alone(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    other = (await log_in(client, alice.email, alice.password)).json()
    await _refresh(client, alice.refresh_token)
    await _refresh(client, alice.refresh_token)
    assert (await client.get("/v1/me", headers=bearer(other["access_token"]))).status_code == 200
    assert (await _refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_revokes_this_session_only(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    other = (await log_in(client, alice.email, alice.password)).json()
    response = await client.post("/v1/auth/logout", headers=alice.headers)
    assert response.status_code == 204
    me = await client.get("/v1/me", headers=alice.headers)
    assert me.status_code == 401
    assert me.json()["code"] == "session_revoked"
    assert (await _refresh(client, alice.refresh_token)).status_code == 401
    assert (await client.get("/v1/me", headers=bearer(other["access_token"]))).status_code == 200
    revoked = (
        await db.scalars(select(AuthSession).where(AuthSession.revoked_at.is_not(None)))
    ).all()
    assert [s.revoked_reason for s in revoked] == ["logout"]


async def test_logout_everywhere_revokes_every_session(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    other = (await log_in(client, alice.email, alice.password)).json()
    response = await client.post(
        "/v1/auth/logout", headers=alice.headers, json={"everywhere": True}
    )
    assert response.status_code == 204
    assert (await client.get("/v1/me", headers=bearer(other["access_token"]))).status_code == 401
    open_sessions = (
        await db.scalars(select(AuthSession).where(AuthSession.revoked_at.is_(None)))
    ).all()
    assert open_sessions == []


async def test_password_change_revokes_sessions_and_old_password(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    other = (await log_in(client, alice.email, alice.password)).json()
    new_password = "another-long-passphrase-77"
    response = await client.post(
        "/v1/me/password",
        headers=alice.headers,
        json={"current_password": alice.password, "new_password": new_password},
    )
    assert response.status_code == 204, response.text
    for token in (alice.access_token, other["access_token"]):
        assert (await client.get("/v1/me", headers=bearer(token))).status_code == 401
    assert (await _refresh(client, other["refresh_token"])).status_code == 401
    assert (await log_in(client, alice.email, alice.password)).status_code == 401
    assert (await log_in(client, alice.email, new_password)).status_code == 200
    reasons = {s.revoked_reason for s in (await db.scalars(select(AuthSession))).all()}
    assert "password_changed" in reasons


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    response = await client.post(
        "/v1/me/password",
        headers=alice.headers,
        json={"current_password": "wrong-password-here", "new_password": "another-long-pass-77"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "current_password"
    assert (await client.get("/v1/me", headers=alice.headers)).status_code == 200


async def test_password_change_applies_the_policy(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    response = await client.post(
        "/v1/me/password",
        headers=alice.headers,
        json={"current_password": alice.password, "new_password": "qwerty123"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "new_password"


async def test_logout_reaches_other_replicas_within_the_cache_interval(
    client: httpx.AsyncClient, alice: TestUser, settings: Settings, test_database_url: str
) -> None:
    """A replica trusts a session it checked for LARIBA_SESSION_CHECK_CACHE_SECONDS; the
    replica that revokes it forgets at once, the others within that interval."""
    replica_settings = settings.model_copy(update={"session_check_cache_seconds": 0.5})
    async with running_client(replica_settings, test_database_url) as replica:
        assert (await replica.get("/v1/me", headers=alice.headers)).status_code == 200
        assert (await client.post("/v1/auth/logout", headers=alice.headers)).status_code == 204
        assert (await client.get("/v1/me", headers=alice.headers)).status_code == 401
        await asyncio.sleep(0.6)
        late = await replica.get("/v1/me", headers=alice.headers)
        assert late.status_code == 401
        assert late.json()["code"] == "session_revoked"


async def test_without_the_cache_every_call_checks_the_session(
    client: httpx.AsyncClient, alice: TestUser, settings: Settings, test_database_url: str
) -> None:
    replica_settings = settings.model_copy(update={"session_check_cache_seconds": 0})
    async with running_client(replica_settings, test_database_url) as replica:
        assert (await replica.get("/v1/me", headers=alice.headers)).status_code == 200
        assert (await client.post("/v1/auth/logout", headers=alice.headers)).status_code == 204
        assert (await replica.get("/v1/me", headers=alice.headers)).status_code == 401
