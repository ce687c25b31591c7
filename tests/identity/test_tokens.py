"""The JWT negative suite: every forged or misused token is a 401 problem."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.secrets import SecretBox
from lariba.core.settings import Settings
from lariba.identity.models import SigningKey
from tests.fixtures.identity import TestUser, bearer


async def _signing_key(db: AsyncSession, settings: Settings) -> tuple[str, Ed25519PrivateKey]:
    key = (await db.scalars(select(SigningKey).where(SigningKey.status == "active"))).one()
    pem = SecretBox(settings.master_key).decrypt(key.private_key_encrypted, purpose="signing-key")
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return key.kid, private


def _claims(user: TestUser, **overrides: Any) -> dict[str, Any]:
    access = jwt.decode(user.access_token, options={"verify_signature": False})
    now = int(time.time())
    claims = {**access, "iat": now, "nbf": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def _expect_401(client: httpx.AsyncClient, token: str, code: str = "invalid_token") -> None:
    response = await client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response.json()["status"] == 401


async def test_forged_token_with_the_real_key_is_accepted(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, settings: Settings
) -> None:
    """The control: the forging helpers make tokens the API accepts, so each negative
    case below fails for the reason it names."""
    kid, private = await _signing_key(db, settings)
    token = jwt.encode(
        _claims(alice), private, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"}
    )
    response = await client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == str(alice.id)


async def test_alg_none_is_rejected(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, settings: Settings
) -> None:
    kid, _ = await _signing_key(db, settings)
    header = {"alg": "none", "typ": "at+jwt", "kid": kid}
    await _expect_401(client, f"{_b64(header)}.{_b64(_claims(alice))}.")


async def test_hs256_signed_with_the_public_key_is_rejected(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, settings: Settings
) -> None:
    kid, private = await _signing_key(db, settings)
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
    signing_input = f"{_b64(header)}.{_b64(_claims(alice))}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")
    await _expect_401(client, token)


async def test_token_signed_with_another_key_is_rejected(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, settings: Settings
) -> None:
    kid, _ = await _signing_key(db, settings)
    token = jwt.encode(
        _claims(alice),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": kid, "typ": "at+jwt"},
    )
    await _expect_401(client, token)


async def test_unknown_kid_is_rejected(client: httpx.AsyncClient, alice: TestUser) -> None:
    token = jwt.encode(
        _claims(alice),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "not-a-lariba-key", "typ": "at+jwt"},
    )
    await _expect_401(client, token)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"exp": int(time.time()) - 10}, "token_expired"),
        ({"nbf": int(time.time()) + 3600}, "invalid_token"),
        ({"aud": "someone-else"}, "invalid_token"),
        ({"iss": "https://evil.example"}, "invalid_token"),
        ({"sub": "not-a-uuid"}, "invalid_token"),
        ({"exp": None}, "invalid_token"),
        ({"token_use": "refresh"}, "invalid_token"),
    ],
    ids=["expired", "nbf-future", "wrong-aud", "wrong-iss", "bad-sub", "no-exp", "wrong-use"],
)
async def test_bad_claims_are_rejected(
    client: httpx.AsyncClient,
    alice: TestUser,
    db: AsyncSession,
    settings: Settings,
    overrides: dict[str, Any],
    code: str,
) -> None:
    kid, private = await _signing_key(db, settings)
    token = jwt.encode(
        _claims(alice, **overrides),
        private,
        algorithm="EdDSA",
        headers={"kid": kid, "typ": "at+jwt"},
    )
    await _expect_401(client, token, code)


async def test_refresh_token_cannot_be_used_as_access_token(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    await _expect_401(client, alice.refresh_token)


async def test_access_token_cannot_be_used_as_refresh_token(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    response = await client.post("/v1/auth/refresh", json={"refresh_token": alice.access_token})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.", ""])
async def test_malformed_tokens_are_rejected(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] in {"invalid_token", "unauthorized"}


async def test_jwks_publishes_the_verifying_key(client: httpx.AsyncClient, alice: TestUser) -> None:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(alice.access_token)["kid"]
    (key,) = [k for k in jwks["keys"] if k["kid"] == kid]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
    assert "d" not in key
    public = jwt.PyJWK(key).key
    claims = jwt.decode(alice.access_token, public, algorithms=["EdDSA"], audience="lariba-api")
    assert claims["sub"] == str(alice.id)
