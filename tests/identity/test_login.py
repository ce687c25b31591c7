"""Sign-up and login through HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.models import AuditEvent, AuthSession, User
from tests.fixtures.identity import DEFAULT_PASSWORD, TestUser, bearer, log_in, sign_up


async def test_signup_normalises_email_and_hashes_with_argon2id(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    response = await client.post(
        "/v1/auth/signup", json={"email": "  Carol@Example.COM ", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "carol@example.com"
    user = (await db.scalars(select(User))).one()
    assert user.email == "carol@example.com"
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert DEFAULT_PASSWORD not in user.password_hash


async def test_signup_email_is_unique_case_insensitively(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    response = await client.post(
        "/v1/auth/signup", json={"email": "ALICE@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


async def test_signup_refuses_short_and_common_passwords(client: httpx.AsyncClient) -> None:
    short = await client.post(
        "/v1/auth/signup", json={"email": "d@example.com", "password": "abc12"}
    )
    assert short.status_code == 422
    assert short.json()["code"] == "password_too_short"
    assert short.json()["errors"][0]["field"] == "password"
    common = await client.post(
        "/v1/auth/signup", json={"email": "d@example.com", "password": "password123"}
    )
    assert common.status_code == 422
    assert common.json()["code"] == "password_too_common"


async def test_login_returns_tokens_that_authenticate(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    me = await client.get("/v1/me", headers=alice.headers)
    assert me.status_code == 200
    assert me.json()["email"] == "alice@example.com"
    assert me.json()["id"] == str(alice.id)
    sessions = (await db.scalars(select(AuthSession))).all()
    assert len(sessions) == 1
    assert sessions[0].user_id == alice.id


def _without_request_id(body: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in body.items() if k != "request_id"}


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    wrong = await log_in(client, alice.email, "not-the-password-at-all")
    unknown = await log_in(client, "nobody@example.com", "not-the-password-at-all")
    assert wrong.status_code == unknown.status_code == 401
    assert _without_request_id(wrong.json()) == _without_request_id(unknown.json())
    assert wrong.headers["content-type"] == "application/problem+json"
    failures = (
        await db.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.login", AuditEvent.outcome == "failure"
            )
        )
    ).all()
    assert {f.details["reason"] for f in failures} == {"wrong_password", "unknown_user"}
    assert all(str(f.client_ip) == "127.0.0.1" and f.request_id for f in failures)


async def test_login_is_audited_with_request_id(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    user = await sign_up(client)
    event = (
        await db.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.login", AuditEvent.actor_id == user.id
            )
        )
    ).one()
    assert event.outcome == "success"
    assert event.target_type == "session"
    assert event.request_id


async def test_me_without_token_is_401_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_api_docs_authorize_flow_uses_token_endpoint(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/v1/auth/token"
    assert (await client.get("/docs")).status_code == 200


async def test_token_of_one_user_reads_only_that_user(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    me = await client.get("/v1/me", headers=bearer(bob.access_token))
    assert me.json()["email"] == "bob@example.com"


async def test_login_rehashes_when_the_parameters_change(
    client: httpx.AsyncClient, alice: TestUser, make_client: Any, db: AsyncSession
) -> None:
    async with make_client(argon2_time_cost=3) as stronger:
        assert (await log_in(stronger, alice.email, alice.password)).status_code == 200
    user = await db.get(User, alice.id)
    assert user is not None
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    assert (await log_in(client, alice.email, alice.password)).status_code == 200
