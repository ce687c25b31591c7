"""Use cases of the two-factor endpoints: enrolment, confirmation, disabling, recovery codes.

Wrong passwords and wrong second factors here count against the account's login throttle:
otherwise a stolen access token would allow unthrottled guessing of either.
"""

from __future__ import annotations

import secrets
from typing import Literal, NoReturn

import pyotp
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import Conflict, InvalidInput
from lariba.identity import audit, throttle
from lariba.identity.audit import RequestContext
from lariba.identity.authn import Principal
from lariba.identity.mfa.codes import (
    TOTP_PURPOSE,
    hash_recovery_code,
    matching_totp_step,
    totp_for,
    verify_second_factor,
)
from lariba.identity.mfa.schemas import MfaEnrolment, MfaStatus, RecoveryCodes
from lariba.identity.models import RecoveryCode, User
from lariba.identity.runtime import IdentityRuntime

TOTP_ISSUER = "Lariba Cloud"
RECOVERY_CODE_COUNT = 10


def _new_recovery_code() -> str:
    raw = secrets.token_hex(5)
    return f"{raw[:5]}-{raw[5:]}"


async def _locked_user(session: AsyncSession, principal: Principal) -> User:
    # Locked so two concurrent enrolments or confirmations cannot interleave.
    user = await session.get(User, principal.user_id, with_for_update=True)
    assert user is not None
    return user


def _require_enabled(user: User) -> None:
    if not user.mfa_enabled:
        raise Conflict(
            "Two-factor authentication is not enabled on this account.", code="mfa_not_enabled"
        )


async def _replace_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    """Deletes the user's recovery codes and stores the hashes of new ones."""
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=hash_recovery_code(c)) for c in codes)
    await session.flush()
    return codes


async def _reject(
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    user: User,
    action: str,
    field: Literal["password", "code"],
) -> NoReturn:
    """Counts a failed credential check against the account and records it, each in its
    own transaction (the request's is rolled back), then raises the 422."""
    await throttle.record_login_failure(
        runtime.sessionmaker,
        keys=throttle.throttle_keys(user.email, None),
        settings=runtime.settings,
    )
    reason = "wrong_password" if field == "password" else "wrong_mfa_code"
    await audit.record_now(
        runtime.sessionmaker,
        ctx=ctx,
        actor=principal.actor,
        action=action,
        outcome="failure",
        target_type="user",
        target_id=principal.user_id,
        details={"reason": reason},
    )
    if field == "password":
        raise InvalidInput("password", "is incorrect", code="invalid_password")
    raise InvalidInput(
        "code", "is not a valid two-factor code or unused recovery code", code="invalid_mfa_code"
    )


async def _check_credentials(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    user: User,
    action: str,
    password: str | None = None,
    code: str | None = None,
) -> None:
    """Checks the password, then the second factor (consuming it), of those given."""
    await throttle.ensure_not_throttled(session, throttle.throttle_keys(user.email, None))
    if password is not None and not runtime.passwords.verify(user.password_hash, password):
        await _reject(
            runtime, ctx=ctx, principal=principal, user=user, action=action, field="password"
        )
    if code is not None and not await verify_second_factor(
        session, user=user, code=code, box=runtime.box
    ):
        await _reject(runtime, ctx=ctx, principal=principal, user=user, action=action, field="code")
    await throttle.clear_account_failures(session, user.email)


async def mfa_status(session: AsyncSession, *, principal: Principal) -> MfaStatus:
    user = await session.get(User, principal.user_id)
    assert user is not None
    remaining = await session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )
    return MfaStatus(
        enabled=user.mfa_enabled,
        pending=user.totp_pending_secret_encrypted is not None,
        recovery_codes_remaining=int(remaining or 0),
    )


async def start_enrolment(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    password: str,
) -> MfaEnrolment:
    """Generates a TOTP secret and keeps it pending until a code from it is confirmed.
    Starting again replaces a pending secret (say, the QR code was lost)."""
    user = await _locked_user(session, principal)
    if user.mfa_enabled:
        raise Conflict(
            "Two-factor authentication is already enabled; disable it first to enrol a new "
            "authenticator.",
            code="mfa_already_enabled",
        )
    await _check_credentials(
        session,
        runtime,
        ctx=ctx,
        principal=principal,
        user=user,
        action="mfa.enrolment_started",
        password=password,
    )
    secret = pyotp.random_base32()
    user.totp_pending_secret_encrypted = runtime.box.encrypt(secret.encode(), purpose=TOTP_PURPOSE)
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="mfa.enrolment_started",
        target_type="user",
        target_id=user.id,
    )
    return MfaEnrolment(
        secret=secret,
        otpauth_uri=totp_for(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER),
    )


async def confirm_enrolment(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    code: str,
) -> RecoveryCodes:
    """Turns two-factor on once a code from the pending secret matches; returns the
    recovery codes, the only time they are shown."""
    user = await _locked_user(session, principal)
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is already enabled.", code="mfa_already_enabled")
    pending = user.totp_pending_secret_encrypted
    if pending is None:
        raise Conflict(
            "No enrolment is pending; start one with POST /v1/me/mfa.", code="mfa_not_pending"
        )
    secret = runtime.box.decrypt(pending, purpose=TOTP_PURPOSE).decode()
    # Authenticator apps show the code as "123 456".
    step = matching_totp_step(secret, "".join(code.split()))
    if step is None:
        raise InvalidInput(
            "code",
            "does not match the secret; check the authenticator app and its clock",
            code="invalid_mfa_code",
        )
    user.totp_secret_encrypted = pending
    user.totp_pending_secret_encrypted = None
    user.mfa_enabled = True
    # The confirming code is spent: it cannot be replayed to log in.
    user.totp_last_step = step
    codes = await _replace_recovery_codes(session, user)
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="mfa.enabled",
        target_type="user",
        target_id=user.id,
        details={"recovery_codes": len(codes)},
    )
    return RecoveryCodes(recovery_codes=codes)


async def disable(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    password: str,
    code: str,
) -> None:
    """Turns two-factor off after checking the password and a second factor."""
    user = await _locked_user(session, principal)
    _require_enabled(user)
    await _check_credentials(
        session,
        runtime,
        ctx=ctx,
        principal=principal,
        user=user,
        action="mfa.disabled",
        password=password,
        code=code,
    )
    user.mfa_enabled = False
    user.totp_secret_encrypted = None
    user.totp_pending_secret_encrypted = None
    user.totp_last_step = None
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="mfa.disabled",
        target_type="user",
        target_id=user.id,
    )


async def regenerate_recovery_codes(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    code: str,
) -> RecoveryCodes:
    """Replaces every recovery code (used or not) with new ones, shown only now."""
    user = await _locked_user(session, principal)
    _require_enabled(user)
    await _check_credentials(
        session,
        runtime,
        ctx=ctx,
        principal=principal,
        user=user,
        action="mfa.recovery_codes_regenerated",
        code=code,
    )
    codes = await _replace_recovery_codes(session, user)
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="mfa.recovery_codes_regenerated",
        target_type="user",
        target_id=user.id,
        details={"recovery_codes": len(codes)},
    )
    return RecoveryCodes(recovery_codes=codes)
