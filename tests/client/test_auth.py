"""How the client authenticates: password login, an access token or API key given to it,
and a transparent refresh when the access token has expired."""

from __future__ import annotations

import asyncio
import uuid

import jwt
import pytest

from lariba.client import Client, Unauthorized
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.secrets import SecretBox
from lariba.core.settings import Settings
from lariba.identity.tokens import KeyRing
from tests.client.conftest import Account
from tests.fixtures.console import ConsoleServer


def expired_copy(server: ConsoleServer, access_token: str) -> str:
    """An access token of the same session, signed with the server's key, expired a
    minute ago."""

    async def issue() -> str:
        settings: Settings = server.app.state.settings
        engine = create_engine(settings, server.database_url)
        try:
            keyring = KeyRing(
                settings=settings,
                box=SecretBox(settings.master_key),
                sessionmaker=create_sessionmaker(engine),
            )
            await keyring.load()
            claims = jwt.decode(access_token, options={"verify_signature": False})
            issued = await keyring.issue(
                use="access",
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                ttl_seconds=-60,
            )
            return issued.token
        finally:
            await engine.dispose()

    return asyncio.run(issue())


def test_password_login_keeps_both_tokens(client: Client, account: Account) -> None:
    assert client.tokens is None

    tokens = client.log_in()
    me = client.me()

    assert me.email == account.email
    assert not me.mfa_enabled
    assert tokens.refresh_token
    assert client.tokens == tokens


def test_expired_access_token_is_refreshed_once(
    client: Client, console_server: ConsoleServer, account: Account
) -> None:
    tokens = client.log_in()
    expired = expired_copy(console_server, tokens.access_token)
    with console_server.api(expired) as api:
        refused = api.get("/v1/me")
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_expired"

    with Client(console_server.url, token=expired, refresh_token=tokens.refresh_token) as resumed:
        me = resumed.me()
        project = resumed.projects.create("after-refresh")

        assert me.email == account.email
        assert resumed.tokens is not None
        assert resumed.tokens.access_token != expired
        assert resumed.tokens.refresh_token != tokens.refresh_token
        new_access = resumed.tokens.access_token
    with console_server.api(new_access) as api:
        assert api.get("/v1/me").json()["email"] == account.email
        assert api.get(f"/v1/projects/{project.id}").json()["name"] == "after-refresh"


def test_expired_token_without_refresh_token_is_unauthorized(
    client: Client, console_server: ConsoleServer
) -> None:
    expired = expired_copy(console_server, client.log_in().access_token)

    with Client(console_server.url, token=expired) as stale, pytest.raises(Unauthorized) as raised:
        stale.me()

    assert raised.value.code == "token_expired"


def test_api_key_works_as_token(client: Client, console_server: ConsoleServer) -> None:
    project = client.projects.create("keyed")
    with console_server.api(client.log_in().access_token) as api:
        created = api.post("/v1/me/api-keys", json={"name": "sdk", "project_id": project.id})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("lrb_")

    with Client(console_server.url, token=key) as keyed:
        listed = keyed.projects.list()

    assert [p.id for p in listed] == [project.id]


def test_token_and_password_together_are_refused() -> None:
    with pytest.raises(ValueError, match="either token"):
        Client("http://127.0.0.1:9", token="lrb_x", email="a@example.com", password="pw")


def test_log_out_ends_the_session(client: Client, console_server: ConsoleServer) -> None:
    tokens = client.log_in()

    client.log_out()

    with console_server.api(tokens.access_token) as api:
        refused = api.get("/v1/me")
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"
    with pytest.raises(Unauthorized):
        client.me()
