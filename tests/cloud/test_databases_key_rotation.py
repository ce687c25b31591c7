"""Rotating the master key with `lariba keys rotate-secrets`, as an operator runs it:
database passwords are re-wrapped, the identity's secrets re-encrypted, and the API on the
new key reads them all."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.databases.models import DatabaseCredential
from lariba.core.envelope import Envelope
from lariba.core.secrets import SecretBox
from lariba.identity.models import SigningKey
from lariba.monitoring.models import Webhook
from lariba.monitoring.webhooks.delivery import secret_purpose
from lariba.providers.local.database_server import DatabaseServer
from tests.fixtures.cloud import cloud_client, cloud_settings
from tests.fixtures.database import TEST_SECRET_KEY
from tests.fixtures.databases import create_database, local_provider, reveal
from tests.fixtures.identity import create_project, log_in, sign_up

NEW_KEY = "rotated-master-key-abcdefghijklmnopqrstuvwxyz-0123456789"


def _rotate(
    database_url: str, data_dir: Path, *, key: str, previous: str | None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LARIBA_DATABASE_URL": database_url,
        "LARIBA_DATA_DIR": str(data_dir),
        "LARIBA_SECRET_KEY": key,
    }
    env.pop("LARIBA_SECRET_KEY_PREVIOUS", None)
    if previous is not None:
        env["LARIBA_SECRET_KEY_PREVIOUS"] = previous
    return subprocess.run(
        [sys.executable, "-m", "lariba.cli.main", "keys", "rotate-secrets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _sealed(db: AsyncSession) -> list[tuple[str, str, str]]:
    db.expire_all()
    rows = await db.scalars(select(DatabaseCredential))
    return [(c.kek_id, c.wrapped_key, c.ciphertext) for c in rows]


async def test_rotate_secrets_moves_everything_to_the_new_master_key(
    tmp_path: Path, test_database_url: str, db: AsyncSession, databases_server: DatabaseServer
) -> None:
    provider = local_provider(databases_server, tmp_path)
    async with cloud_client(
        cloud_settings(tmp_path, webhook_allowed_networks="127.0.0.0/8"),
        test_database_url,
        provider=provider,
        run_worker=False,
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_database(client, user, pid)
        password = created["credentials"]["password"]
        hook = await client.post(
            f"/v1/projects/{pid}/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
            headers=user.headers,
        )
        assert hook.status_code == 201, hook.text
        webhook_id, webhook_secret = uuid.UUID(hook.json()["id"]), hook.json()["secret"]
    [(old_kek, old_wrapped, ciphertext)] = await _sealed(db)
    assert old_kek == Envelope(TEST_SECRET_KEY.encode()).current.id
    keys_before = (await db.scalars(select(SigningKey.private_key_encrypted))).all()

    # Without the previous key nothing can be moved, and nothing is.
    refused = _rotate(test_database_url, tmp_path, key=NEW_KEY, previous=None)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "nothing changed" in refused.stderr
    assert await _sealed(db) == [(old_kek, old_wrapped, ciphertext)]

    rotated = _rotate(test_database_url, tmp_path, key=NEW_KEY, previous=TEST_SECRET_KEY)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 database passwords" in rotated.stdout
    assert password not in rotated.stdout + rotated.stderr
    [(new_kek, new_wrapped, same_ciphertext)] = await _sealed(db)
    assert new_kek == Envelope(NEW_KEY.encode()).current.id
    assert new_wrapped != old_wrapped
    assert same_ciphertext == ciphertext  # only the data key was re-wrapped
    db.expire_all()
    keys_after = (await db.scalars(select(SigningKey.private_key_encrypted))).all()
    assert set(keys_after).isdisjoint(keys_before)
    sealed_secret = await db.scalar(
        select(Webhook.secret_encrypted).where(Webhook.id == webhook_id)
    )
    assert sealed_secret is not None
    opened = SecretBox(NEW_KEY.encode()).decrypt(sealed_secret, purpose=secret_purpose(webhook_id))
    assert opened.decode() == webhook_secret
    assert "1 webhook secrets" in rotated.stdout

    # Again: everything is current already.
    again = _rotate(test_database_url, tmp_path, key=NEW_KEY, previous=TEST_SECRET_KEY)
    assert again.returncode == 0, again.stderr
    assert "0 database passwords, 0 signing keys" in again.stdout

    # The API on the new key alone signs tokens and reveals the same password.
    settings = cloud_settings(tmp_path, secret_key=NEW_KEY)
    async with cloud_client(
        settings, test_database_url, provider=provider, run_worker=False
    ) as client:
        tokens = await log_in(client, user.email, user.password)
        assert tokens.status_code == 200, tokens.text
        user.access_token = tokens.json()["access_token"]
        credentials = await reveal(client, user, pid, created["resource"]["id"])
        assert credentials["password"] == password
