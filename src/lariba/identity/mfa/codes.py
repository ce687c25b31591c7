"""Checking a second factor at login: a TOTP code (not replayable) or a recovery code."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime

import pyotp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.secrets import SecretBox
from lariba.identity.models import RecoveryCode, User

TOTP_PURPOSE = "totp-secret"
TOTP_PERIOD_SECONDS = 30
# Accept the previous and next 30-second step, for clocks that drift.
TOTP_VALID_WINDOW = 1
_TOTP_CODE = re.compile(r"^\d{6}$")


def normalise_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()


def totp_for(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, interval=TOTP_PERIOD_SECONDS)


def matching_totp_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step whose code equals ``code`` within the allowed window, else None."""
    if not _TOTP_CODE.match(code):
        return None
    now = time.time() if now is None else now
    totp = totp_for(secret)
    current = int(now // TOTP_PERIOD_SECONDS)
    for step in range(current - TOTP_VALID_WINDOW, current + TOTP_VALID_WINDOW + 1):
        if pyotp.utils.strings_equal(totp.at(step * TOTP_PERIOD_SECONDS), code):
            return step
    return None


async def verify_second_factor(
    session: AsyncSession, *, user: User, code: str, box: SecretBox
) -> bool:
    """True when ``code`` is a fresh TOTP code or an unused recovery code of ``user``;
    either is consumed so it cannot be used again."""
    code = code.strip()
    if user.totp_secret_encrypted and _TOTP_CODE.match(code):
        secret = box.decrypt(user.totp_secret_encrypted, purpose=TOTP_PURPOSE).decode()
        step = matching_totp_step(secret, code)
        if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
            return False
        user.totp_last_step = step
        await session.flush()
        return True
    recovery = await session.scalar(
        select(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == hash_recovery_code(code),
            RecoveryCode.used_at.is_(None),
        )
        .with_for_update()
    )
    if recovery is None:
        return False
    recovery.used_at = datetime.now(UTC)
    await session.flush()
    return True
