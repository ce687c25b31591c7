"""Two-factor authentication: enrolment, login with TOTP and recovery codes, disabling."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.mfa.codes import TOTP_PURPOSE, hash_recovery_code, totp_for
from lariba.identity.models import AuditEvent, RecoveryCode, User
from tests.fixtures.identity import TestUser, log_in

RECOVERY_CODE = re.compile(r"^[0-9a-f]{5}-[0-9a-f]{5}$")


def code_now(secret: str) -> str:
    return totp_for(secret).now()


def code_next_step(secret: str) -> str:
    """The code of the step after the current one: fresh after ``code_now`` was used."""
    return totp_for(secret).at(time.time() + 30)


def wrong_code(secret: str) -> str:
    """A 6-digit code that matches none of the steps a server would accept now."""
    totp = totp_for(secret)
    accepted = {totp.at(time.time() + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(10)) if c not in accepted)


async def mfa_status(client: httpx.AsyncClient, user: TestUser) -> dict[str, Any]:
    response = await client.get("/v1/me/mfa", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def start_enrolment(client: httpx.AsyncClient, user: TestUser) -> dict[str, Any]:
    response = await client.post(
        "/v1/me/mfa", json={"password": user.password}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def enable_mfa(client: httpx.AsyncClient, user: TestUser) -> tuple[str, list[str]]:
    """Enrols and confirms with the current code; returns the secret and recovery codes."""
    secret = (await start_enrolment(client, user))["secret"]
    response = await client.post(
        "/v1/me/mfa/confirm", json={"code": code_now(secret)}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    codes: list[str] = response.json()["recovery_codes"]
    return secret, codes


async def disable_mfa(
    client: httpx.AsyncClient, user: TestUser, *, password: str, code: str
) -> httpx.Response:
    return await client.request(
        "DELETE", "/v1/me/mfa", json={"password": password, "code": code}, headers=user.headers
    )


async def audit_actions(db: AsyncSession, user: TestUser) -> list[tuple[str, str]]:
    events = await db.scalars(
        select(AuditEvent)
        .where(AuditEvent.actor_id == user.id, AuditEvent.action.like("mfa.%"))
        .order_by(AuditEvent.id)
    )
    return [(e.action, e.outcome) for e in events]


async def test_enrolment_and_login_with_totp_and_recovery_codes(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    assert await mfa_status(client, alice) == {
        "enabled": False,
        "pending": False,
        "recovery_codes_remaining": 0,
    }
    enrolment = await start_enrolment(client, alice)
    secret = enrolment["secret"]
    assert re.match(r"^[A-Z2-7]{32}$", secret)
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/Lariba%20Cloud:alice%40example.com?")
    assert f"secret={secret}" in enrolment["otpauth_uri"]
    assert "issuer=Lariba%20Cloud" in enrolment["otpauth_uri"]
    assert await mfa_status(client, alice) == {
        "enabled": False,
        "pending": True,
        "recovery_codes_remaining": 0,
    }
    # Until confirmed, login does not ask for a code.
    assert (await log_in(client, alice.email, alice.password)).status_code == 200

    confirmed = await client.post(
        "/v1/me/mfa/confirm", json={"code": code_now(secret)}, headers=alice.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    recovery_codes = confirmed.json()["recovery_codes"]
    assert len(recovery_codes) == len(set(recovery_codes)) == 10
    assert all(RECOVERY_CODE.match(c) for c in recovery_codes)
    assert await mfa_status(client, alice) == {
        "enabled": True,
        "pending": False,
        "recovery_codes_remaining": 10,
    }
    assert (await client.get("/v1/me", headers=alice.headers)).json()["mfa_enabled"] is True

    no_code = await log_in(client, alice.email, alice.password)
    assert no_code.status_code == 401
    assert no_code.json()["code"] == "mfa_required"
    wrong = await log_in(client, alice.email, alice.password, otp=wrong_code(secret))
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_mfa_code"
    fresh = code_next_step(secret)
    assert (await log_in(client, alice.email, alice.password, otp=fresh)).status_code == 200
    replayed = await log_in(client, alice.email, alice.password, otp=fresh)
    assert replayed.status_code == 401
    assert replayed.json()["code"] == "invalid_mfa_code"

    recovery = recovery_codes[0]
    # Recovery codes are accepted however the user types them.
    typed = " " + recovery.upper().replace("-", " ") + " "
    assert (await log_in(client, alice.email, alice.password, otp=typed)).status_code == 200
    reused = await log_in(client, alice.email, alice.password, otp=recovery)
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_mfa_code"
    assert (await mfa_status(client, alice))["recovery_codes_remaining"] == 9
    used = await db.scalar(
        select(RecoveryCode).where(RecoveryCode.code_hash == hash_recovery_code(recovery))
    )
    assert used is not None
    assert used.used_at is not None

    assert await audit_actions(db, alice) == [
        ("mfa.enrolment_started", "success"),
        ("mfa.enabled", "success"),
    ]


async def test_secret_and_recovery_codes_are_not_stored_in_clear(
    client: httpx.AsyncClient, app: FastAPI, alice: TestUser, db: AsyncSession
) -> None:
    secret = (await start_enrolment(client, alice))["secret"]
    user = await db.get(User, alice.id)
    assert user is not None
    assert user.totp_pending_secret_encrypted is not None
    assert user.totp_pending_secret_encrypted.startswith("v1.")
    box = app.state.identity.box
    assert box.decrypt(user.totp_pending_secret_encrypted, purpose=TOTP_PURPOSE) == secret.encode()

    codes = (
        await client.post(
            "/v1/me/mfa/confirm", json={"code": code_now(secret)}, headers=alice.headers
        )
    ).json()["recovery_codes"]
    await db.refresh(user)
    assert user.totp_pending_secret_encrypted is None
    assert user.totp_secret_encrypted is not None
    assert box.decrypt(user.totp_secret_encrypted, purpose=TOTP_PURPOSE) == secret.encode()
    users_row = (
        await db.execute(text("SELECT u::text FROM users u WHERE id = :id"), {"id": alice.id})
    ).scalar_one()
    assert secret not in users_row
    assert secret.lower() not in users_row.lower()

    stored = (
        await db.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == alice.id))
    ).all()
    assert sorted(stored) == sorted(hash_recovery_code(c) for c in codes)
    codes_table = (
        await db.execute(text("SELECT string_agg(r::text, ' ') FROM mfa_recovery_codes r"))
    ).scalar_one()
    assert not any(c in codes_table or c.replace("-", "") in codes_table for c in codes)


async def test_confirming_code_cannot_be_replayed_at_login(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    secret = (await start_enrolment(client, alice))["secret"]
    code = code_now(secret)
    confirmed = await client.post("/v1/me/mfa/confirm", json={"code": code}, headers=alice.headers)
    assert confirmed.status_code == 200
    user = await db.get(User, alice.id)
    assert user is not None
    assert user.totp_last_step is not None
    replayed = await log_in(client, alice.email, alice.password, otp=code)
    assert replayed.status_code == 401
    assert replayed.json()["code"] == "invalid_mfa_code"


async def test_start_with_wrong_password_is_422_and_audited(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    response = await client.post(
        "/v1/me/mfa", json={"password": "not-my-password-at-all"}, headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_password"
    assert response.json()["errors"][0]["field"] == "password"
    user = await db.get(User, alice.id)
    assert user is not None
    assert user.totp_pending_secret_encrypted is None
    assert await audit_actions(db, alice) == [("mfa.enrolment_started", "failure")]


async def test_wrong_passwords_here_throttle_the_account(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    """A stolen access token must not allow unthrottled password guessing."""
    for _ in range(5):
        response = await client.post(
            "/v1/me/mfa", json={"password": "guess-guess-guess"}, headers=alice.headers
        )
        assert response.json()["code"] == "invalid_password"
    throttled = await client.post(
        "/v1/me/mfa", json={"password": alice.password}, headers=alice.headers
    )
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "login_throttled"
    assert int(throttled.headers["retry-after"]) > 0
    assert (await log_in(client, alice.email, alice.password)).status_code == 429


async def test_start_when_enabled_is_409(client: httpx.AsyncClient, alice: TestUser) -> None:
    await enable_mfa(client, alice)
    again = await client.post(
        "/v1/me/mfa", json={"password": alice.password}, headers=alice.headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "mfa_already_enabled"


async def test_restarting_enrolment_replaces_the_pending_secret(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    first = (await start_enrolment(client, alice))["secret"]
    second = (await start_enrolment(client, alice))["secret"]
    assert first != second
    stale = await client.post(
        "/v1/me/mfa/confirm", json={"code": wrong_code(second)}, headers=alice.headers
    )
    assert stale.status_code == 422
    spaced = code_now(second)
    confirmed = await client.post(
        "/v1/me/mfa/confirm", json={"code": f"{spaced[:3]} {spaced[3:]}"}, headers=alice.headers
    )
    assert confirmed.status_code == 200, confirmed.text


async def test_confirm_with_wrong_code_keeps_enrolment_pending(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    secret = (await start_enrolment(client, alice))["secret"]
    for code in (wrong_code(secret), "not-a-code"):
        response = await client.post(
            "/v1/me/mfa/confirm", json={"code": code}, headers=alice.headers
        )
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_mfa_code"
        assert response.json()["errors"][0]["field"] == "code"
    user = await db.get(User, alice.id)
    assert user is not None
    assert (user.mfa_enabled, user.totp_secret_encrypted) == (False, None)
    assert user.totp_pending_secret_encrypted is not None
    assert (await db.scalars(select(RecoveryCode))).all() == []
    assert (await mfa_status(client, alice))["pending"] is True


async def test_confirm_without_enrolment_is_409(client: httpx.AsyncClient, alice: TestUser) -> None:
    response = await client.post(
        "/v1/me/mfa/confirm", json={"code": "123456"}, headers=alice.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "mfa_not_pending"


async def test_disable_needs_password_and_second_factor(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    secret, recovery_codes = await enable_mfa(client, alice)
    fresh = code_next_step(secret)

    wrong_password = await disable_mfa(client, alice, password="not-my-password", code=fresh)
    assert wrong_password.status_code == 422
    assert wrong_password.json()["code"] == "invalid_password"
    assert wrong_password.json()["errors"][0]["field"] == "password"
    wrong_code_response = await disable_mfa(
        client, alice, password=alice.password, code=wrong_code(secret)
    )
    assert wrong_code_response.status_code == 422
    assert wrong_code_response.json()["code"] == "invalid_mfa_code"
    assert wrong_code_response.json()["errors"][0]["field"] == "code"
    assert (await mfa_status(client, alice))["enabled"] is True

    # The code offered with the wrong password was not spent.
    disabled = await disable_mfa(client, alice, password=alice.password, code=fresh)
    assert disabled.status_code == 204, disabled.text

    user = await db.get(User, alice.id)
    assert user is not None
    assert user.mfa_enabled is False
    assert user.totp_secret_encrypted is None
    assert user.totp_pending_secret_encrypted is None
    assert user.totp_last_step is None
    assert (await db.scalars(select(RecoveryCode))).all() == []
    assert await mfa_status(client, alice) == {
        "enabled": False,
        "pending": False,
        "recovery_codes_remaining": 0,
    }
    assert (await log_in(client, alice.email, alice.password)).status_code == 200
    assert await audit_actions(db, alice) == [
        ("mfa.enrolment_started", "success"),
        ("mfa.enabled", "success"),
        ("mfa.disabled", "failure"),
        ("mfa.disabled", "failure"),
        ("mfa.disabled", "success"),
    ]
    again = await disable_mfa(client, alice, password=alice.password, code=recovery_codes[0])
    assert again.status_code == 409
    assert again.json()["code"] == "mfa_not_enabled"


async def test_disable_with_a_recovery_code(client: httpx.AsyncClient, alice: TestUser) -> None:
    _, recovery_codes = await enable_mfa(client, alice)
    disabled = await disable_mfa(client, alice, password=alice.password, code=recovery_codes[3])
    assert disabled.status_code == 204, disabled.text
    assert (await mfa_status(client, alice))["enabled"] is False


async def test_regenerating_recovery_codes_replaces_the_old_ones(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    secret, old_codes = await enable_mfa(client, alice)
    assert (await log_in(client, alice.email, alice.password, otp=old_codes[0])).status_code == 200
    assert (await mfa_status(client, alice))["recovery_codes_remaining"] == 9

    wrong = await client.post(
        "/v1/me/mfa/recovery-codes", json={"code": wrong_code(secret)}, headers=alice.headers
    )
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "invalid_mfa_code"

    response = await client.post(
        "/v1/me/mfa/recovery-codes", json={"code": code_next_step(secret)}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    new_codes = response.json()["recovery_codes"]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    assert (await mfa_status(client, alice))["recovery_codes_remaining"] == 10
    stored = (await db.scalars(select(RecoveryCode.code_hash))).all()
    assert sorted(stored) == sorted(hash_recovery_code(c) for c in new_codes)

    old = await log_in(client, alice.email, alice.password, otp=old_codes[1])
    assert old.status_code == 401
    assert (await log_in(client, alice.email, alice.password, otp=new_codes[0])).status_code == 200
    assert ("mfa.recovery_codes_regenerated", "success") in await audit_actions(db, alice)


async def test_mfa_changes_need_mfa_enabled(client: httpx.AsyncClient, alice: TestUser) -> None:
    regenerate = await client.post(
        "/v1/me/mfa/recovery-codes", json={"code": "123456"}, headers=alice.headers
    )
    disable = await disable_mfa(client, alice, password=alice.password, code="123456")
    for response in (regenerate, disable):
        assert response.status_code == 409
        assert response.json()["code"] == "mfa_not_enabled"


async def test_requests_with_unknown_fields_are_refused(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    response = await client.post(
        "/v1/me/mfa", json={"password": alice.password, "secret": "AAAA"}, headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "secret"
