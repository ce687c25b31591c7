"""Logging in from the command line: the config file it writes, profiles, an expired
access token refreshed and saved, a revoked session, logout."""

from __future__ import annotations

import stat

import httpx

from tests.cli.conftest import PASSWORD, Lariba, sign_up
from tests.client.test_auth import expired_copy
from tests.fixtures.console import ConsoleServer


def test_login_writes_a_private_config_without_the_password(
    lariba: Lariba, console_server: ConsoleServer, email: str
) -> None:
    lariba.log_in(console_server.url, email)

    assert stat.S_IMODE(lariba.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(lariba.config.parent.stat().st_mode) == 0o700
    assert PASSWORD not in lariba.config.read_text()
    profile = lariba.profiles()["default"]
    assert profile["url"] == console_server.url
    assert profile["email"] == email
    assert profile["access_token"] and profile["refresh_token"]
    whoami = lariba.ok("whoami")
    assert f"{email} on {console_server.url} (profile default)" in whoami


def test_profiles_keep_separate_accounts(
    lariba: Lariba, console_server: ConsoleServer, email: str
) -> None:
    other = sign_up(console_server)
    lariba.log_in(console_server.url, email)
    lariba.log_in(console_server.url, other, profile="other")

    assert lariba.ok("whoami", "--output", "json").count(email) == 1
    assert other in lariba.ok("whoami", "--profile", "other")
    assert set(lariba.profiles()) == {"default", "other"}


def test_wrong_password_is_refused_with_exit_3(
    lariba: Lariba, console_server: ConsoleServer, email: str
) -> None:
    result = lariba(
        "login", "--url", console_server.url, "--email", email, "--password-stdin",
        input="not-the-password\n",
    )  # fmt: skip

    assert result.returncode == 3
    assert result.stderr.startswith("lariba: ")
    assert "Traceback" not in result.stderr
    assert not lariba.config.exists()


def test_expired_access_token_is_refreshed_and_saved(
    logged_in: Lariba, console_server: ConsoleServer, email: str
) -> None:
    lariba = logged_in
    before = lariba.profiles()["default"]
    expired = expired_copy(console_server, before["access_token"])
    text = lariba.config.read_text().replace(before["access_token"], expired)
    lariba.config.write_text(text)

    assert email in lariba.ok("whoami")

    after = lariba.profiles()["default"]
    assert after["access_token"] not in (expired, before["access_token"])
    assert after["refresh_token"] != before["refresh_token"]
    assert stat.S_IMODE(lariba.config.stat().st_mode) == 0o600
    with console_server.api(after["access_token"]) as api:
        assert api.get("/v1/me").json()["email"] == email
    assert email in lariba.ok("whoami")  # the saved refresh token was the one to keep


def test_revoked_session_tells_the_user_to_log_in_again(
    logged_in: Lariba, console_server: ConsoleServer, email: str
) -> None:
    token = console_server.api_token(email, PASSWORD)
    ended = httpx.post(
        f"{console_server.url}/v1/auth/logout",
        headers={"Authorization": f"Bearer {token}"},
        json={"everywhere": True},
    )
    assert ended.status_code in (200, 204), ended.text

    result = logged_in("projects", "list")

    assert result.returncode == 3
    assert result.stderr == (
        f"lariba: not logged in to {console_server.url} any more (The session has ended; "
        f"log in again, session_revoked): run `lariba login --url {console_server.url}`\n"
    )


def test_logout_ends_the_session_and_forgets_the_tokens(
    logged_in: Lariba, console_server: ConsoleServer, email: str
) -> None:
    lariba = logged_in
    token = lariba.profiles()["default"]["access_token"]

    out = lariba.ok("logout")

    assert f"Logged out of {console_server.url}" in out
    profile = lariba.profiles()["default"]
    assert "access_token" not in profile and "refresh_token" not in profile
    assert profile["email"] == email
    with console_server.api(token) as api:
        assert api.get("/v1/me").status_code == 401
    result = lariba("whoami")
    assert result.returncode == 3
    assert result.stderr == (
        f"lariba: not logged in (profile default): run `lariba login --url {console_server.url}`\n"
    )
