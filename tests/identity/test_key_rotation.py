"""Signing key rotation with the `lariba keys` commands, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import jwt
from fastapi import FastAPI

from tests.fixtures.database import TEST_SECRET_KEY
from tests.fixtures.identity import TestUser, bearer, log_in


def _lariba(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LARIBA_DATABASE_URL": database_url, "LARIBA_SECRET_KEY": TEST_SECRET_KEY}
    return subprocess.run(
        [sys.executable, "-m", "lariba.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_rotate_then_retire(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser, test_database_url: str
) -> None:
    old_kid = jwt.get_unverified_header(alice.access_token)["kid"]

    rotated = _lariba(test_database_url, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    listed = _lariba(test_database_url, "keys", "list").stdout
    statuses = dict(line.split("\t")[:2] for line in listed.strip().splitlines())
    assert statuses[old_kid] == "verify_only"
    (new_kid,) = [kid for kid, status in statuses.items() if status == "active"]
    assert new_kid in rotated.stdout

    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    # Tokens signed before the rotation keep working.
    assert (await client.get("/v1/me", headers=alice.headers)).status_code == 200
    # This replica signs with the new key once it reloads (at most a minute later).
    await app.state.identity.keyring.load()
    fresh = (await log_in(client, alice.email, alice.password)).json()
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid

    refused = _lariba(test_database_url, "keys", "retire", new_kid)
    assert refused.returncode == 1
    assert "rotate first" in refused.stderr

    retired = _lariba(test_database_url, "keys", "retire", old_kid)
    assert retired.returncode == 0, retired.stderr
    await app.state.identity.keyring.load()
    gone = await client.get("/v1/me", headers=alice.headers)
    assert gone.status_code == 401
    assert gone.json()["code"] == "invalid_token"
    assert (await client.get("/v1/me", headers=bearer(fresh["access_token"]))).status_code == 200
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [new_kid]
