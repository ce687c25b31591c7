"""``lariba keys rotate-secrets``: moves every secret at rest from the previous master key
to the current one, in one transaction.

Envelope-encrypted secrets (database passwords) only have their data keys re-wrapped; the
secrets sealed directly by ``core.secrets.SecretBox`` (signing keys, TOTP seeds, stored
idempotent responses, webhook signing secrets) are decrypted with the previous key and
encrypted with the current. Running it again, or with no previous key, changes nothing
that is already current.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.databases.models import DatabaseCredential
from lariba.cloud.databases.reconcile import password_purpose
from lariba.core.envelope import Envelope
from lariba.core.idempotency import _BODY_PURPOSE, IdempotencyKey
from lariba.core.secrets import SecretBox, SecretDecryptionError
from lariba.identity.mfa.codes import TOTP_PURPOSE
from lariba.identity.models import SigningKey, User
from lariba.identity.tokens import _KEY_PURPOSE
from lariba.monitoring.models import Webhook
from lariba.monitoring.webhooks.delivery import secret_purpose


@dataclass
class RotationReport:
    database_credentials: int = 0
    signing_keys: int = 0
    totp_secrets: int = 0
    idempotent_responses: int = 0
    webhook_secrets: int = 0


class _Reboxer:
    """Re-encrypts a SecretBox token under the current key unless it already is."""

    def __init__(self, current: bytes, previous: bytes | None) -> None:
        self._new = SecretBox(current)
        self._old = SecretBox(previous) if previous is not None else None

    def __call__(self, token: str, *, purpose: str) -> str | None:
        """The new token, or None when ``token`` already opens with the current key."""
        try:
            self._new.decrypt(token, purpose=purpose)
            return None
        except SecretDecryptionError:
            if self._old is None:
                raise
        plaintext = self._old.decrypt(token, purpose=purpose)
        return self._new.encrypt(plaintext, purpose=purpose)


async def rotate_secrets(
    session: AsyncSession, *, current: bytes, previous: bytes | None
) -> RotationReport:
    """Raises SecretDecryptionError, changing nothing (the caller rolls back), when a
    secret opens with neither key."""
    report = RotationReport()
    envelope = Envelope(current, [previous] if previous is not None else [])
    credentials = await session.scalars(
        select(DatabaseCredential)
        .where(DatabaseCredential.kek_id != envelope.current.id)
        .with_for_update()
    )
    for credential in credentials:
        credential.store(
            envelope.rewrap(credential.sealed, purpose=password_purpose(credential.resource_id))
        )
        report.database_credentials += 1

    rebox = _Reboxer(current, previous)
    for key in await session.scalars(select(SigningKey).with_for_update()):
        token = rebox(key.private_key_encrypted, purpose=_KEY_PURPOSE)
        if token is not None:
            key.private_key_encrypted = token
            report.signing_keys += 1
    users = await session.scalars(
        select(User)
        .where(
            User.totp_secret_encrypted.is_not(None)
            | User.totp_pending_secret_encrypted.is_not(None)
        )
        .with_for_update()
    )
    for user in users:
        changed = False
        if user.totp_secret_encrypted is not None:
            token = rebox(user.totp_secret_encrypted, purpose=TOTP_PURPOSE)
            if token is not None:
                user.totp_secret_encrypted, changed = token, True
        if user.totp_pending_secret_encrypted is not None:
            token = rebox(user.totp_pending_secret_encrypted, purpose=TOTP_PURPOSE)
            if token is not None:
                user.totp_pending_secret_encrypted, changed = token, True
        report.totp_secrets += changed
    stored = await session.scalars(
        select(IdempotencyKey)
        .where(IdempotencyKey.response_body_encrypted.is_not(None))
        .with_for_update()
    )
    for row in stored:
        assert row.response_body_encrypted is not None
        token = rebox(row.response_body_encrypted, purpose=_BODY_PURPOSE)
        if token is not None:
            row.response_body_encrypted = token
            report.idempotent_responses += 1
    for webhook in await session.scalars(select(Webhook).with_for_update()):
        token = rebox(webhook.secret_encrypted, purpose=secret_purpose(webhook.id))
        if token is not None:
            webhook.secret_encrypted = token
            report.webhook_secrets += 1
    await session.flush()
    return report
