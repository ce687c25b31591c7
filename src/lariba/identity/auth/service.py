"""Use cases of the auth endpoints: sign-up, login, refresh, logout, password change."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import Forbidden, InvalidInput, RateLimited, Unauthorized
from lariba.core.metrics import LOGIN_FAILURES
from lariba.identity import audit, throttle
from lariba.identity.audit import Actor, RequestContext
from lariba.identity.auth.schemas import TokenResponse
from lariba.identity.authn import Principal
from lariba.identity.mfa.codes import verify_second_factor
from lariba.identity.models import AuthSession, RefreshToken, User
from lariba.identity.passwords import check_password_policy
from lariba.identity.runtime import IdentityRuntime
from lariba.identity.sessions import issue_tokens, revoke_sessions, start_session
from lariba.identity.users import create_user, normalise_email, user_by_email

INVALID_CREDENTIALS = "Incorrect e-mail or password."


async def sign_up(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    email: str,
    password: str,
    display_name: str | None,
) -> User:
    if not runtime.settings.allow_signup:
        raise Forbidden("Sign-up is disabled on this server.", code="signup_disabled")
    email = normalise_email(email)
    check_password_policy(password, settings=runtime.settings, email=email)
    user = await create_user(
        session,
        email=email,
        password_hash=runtime.passwords.hash(password),
        display_name=display_name,
    )
    await audit.record(
        session,
        ctx=ctx,
        actor=Actor(type="user", id=user.id, label=user.email),
        action="auth.signup",
        target_type="user",
        target_id=user.id,
    )
    return user


async def _login_failed(
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    email: str,
    keys: list[str],
    user: User | None,
    reason: str,
) -> None:
    LOGIN_FAILURES.labels(reason).inc()
    await throttle.record_login_failure(runtime.sessionmaker, keys=keys, settings=runtime.settings)
    await audit.record_now(
        runtime.sessionmaker,
        ctx=ctx,
        actor=Actor(type="user", id=user.id, label=email)
        if user
        else Actor("anonymous", None, email),
        action="auth.login",
        outcome="failure",
        target_type="user",
        target_id=user.id if user else None,
        details={"reason": reason},
    )


async def log_in(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    email: str,
    password: str,
    otp: str | None,
) -> TokenResponse:
    """Checks the password (and second factor), then starts a session.

    An unknown e-mail and a wrong password get the same answer, at the same cost. Failures
    count against the account and the client address; past the limit, 429.
    """
    email = normalise_email(email)
    keys = throttle.throttle_keys(email, ctx.client_ip)
    try:
        await throttle.ensure_not_throttled(session, keys)
    except RateLimited:
        LOGIN_FAILURES.labels("throttled").inc()
        await audit.record_now(
            runtime.sessionmaker,
            ctx=ctx,
            actor=Actor("anonymous", None, email),
            action="auth.login",
            outcome="denied",
            details={"reason": "throttled"},
        )
        raise
    user = await user_by_email(session, email)
    password_ok = runtime.passwords.verify(user.password_hash if user else None, password)
    if user is None or not password_ok or not user.is_active:
        reason = (
            "unknown_user" if user is None else "wrong_password" if not password_ok else "disabled"
        )
        await _login_failed(runtime, ctx=ctx, email=email, keys=keys, user=user, reason=reason)
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    if user.mfa_enabled:
        if not otp:
            raise Unauthorized(
                "This account has two-factor authentication: send the 6-digit code "
                "(or a recovery code) as `otp`.",
                code="mfa_required",
            )
        if not await verify_second_factor(session, user=user, code=otp, box=runtime.box):
            await _login_failed(
                runtime, ctx=ctx, email=email, keys=keys, user=user, reason="wrong_mfa_code"
            )
            raise Unauthorized("The two-factor code is not valid.", code="invalid_mfa_code")
    if runtime.passwords.needs_rehash(user.password_hash):
        user.password_hash = runtime.passwords.hash(password)
    await throttle.clear_account_failures(session, email)
    auth_session, tokens = await start_session(session, runtime, user_id=user.id, ctx=ctx)
    await audit.record(
        session,
        ctx=ctx,
        actor=Actor(type="user", id=user.id, label=user.email),
        action="auth.login",
        target_type="session",
        target_id=auth_session.id,
        details={"mfa": user.mfa_enabled},
    )
    return tokens


async def refresh(
    session: AsyncSession, runtime: IdentityRuntime, *, ctx: RequestContext, token: str
) -> TokenResponse:
    """Trades a refresh token for a new pair. A refresh token is good once: presenting it a
    second time means it was stolen, so the whole session (family) is revoked."""
    claims = await runtime.keyring.verify(token, use="refresh")
    row = (
        await session.execute(
            select(RefreshToken, AuthSession, User.email, User.is_active)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .join(User, User.id == AuthSession.user_id)
            .where(RefreshToken.id == claims.token_id, AuthSession.id == claims.session_id)
            .with_for_update(of=RefreshToken)
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("The refresh token is not valid.", code="invalid_token")
    refresh_token: RefreshToken = row.RefreshToken
    auth_session: AuthSession = row.AuthSession
    actor = Actor(type="user", id=auth_session.user_id, label=row.email)
    now = datetime.now(UTC)
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise Unauthorized("The session has ended; log in again.", code="session_revoked")
    if not row.is_active:
        raise Unauthorized("The account is disabled.", code="account_disabled")
    if refresh_token.used_at is not None:
        # Its own transaction: this request fails and rolls back, the revocation stays.
        async with runtime.sessionmaker.begin() as independent:
            await independent.execute(
                update(AuthSession)
                .where(AuthSession.id == auth_session.id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="refresh_token_reuse")
            )
            await audit.record(
                independent,
                ctx=ctx,
                actor=actor,
                action="auth.refresh_reuse_detected",
                outcome="denied",
                target_type="session",
                target_id=auth_session.id,
            )
        runtime.live_sessions.forget_user(auth_session.user_id)
        raise Unauthorized(
            "This refresh token was already used; the session has been revoked. Log in again.",
            code="refresh_token_reused",
        )
    refresh_token.used_at = now
    auth_session.last_refreshed_at = now
    tokens = await issue_tokens(session, runtime, auth_session=auth_session)
    await audit.record(
        session,
        ctx=ctx,
        actor=actor,
        action="auth.refresh",
        target_type="session",
        target_id=auth_session.id,
    )
    return tokens


async def log_out(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    everywhere: bool,
) -> int:
    revoked = await revoke_sessions(
        session,
        runtime,
        user_id=principal.user_id,
        reason="logout",
        session_id=None if everywhere else principal.session_id,
    )
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="auth.logout",
        target_type="user" if everywhere else "session",
        target_id=principal.user_id if everywhere else principal.session_id,
        details={"everywhere": everywhere, "sessions_revoked": revoked},
    )
    return revoked


async def change_password(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    current_password: str,
    new_password: str,
) -> None:
    """Sets a new password and ends every session of the account, this one included."""
    user = await session.get(User, principal.user_id, with_for_update=True)
    assert user is not None
    if not runtime.passwords.verify(user.password_hash, current_password):
        await audit.record_now(
            runtime.sessionmaker,
            ctx=ctx,
            actor=principal.actor,
            action="auth.password_change",
            outcome="failure",
            target_type="user",
            target_id=user.id,
            details={"reason": "wrong_current_password"},
        )
        raise InvalidInput("current_password", "is incorrect", code="invalid_current_password")
    check_password_policy(
        new_password, settings=runtime.settings, email=user.email, field="new_password"
    )
    user.password_hash = runtime.passwords.hash(new_password)
    user.password_changed_at = datetime.now(UTC)
    revoked = await revoke_sessions(session, runtime, user_id=user.id, reason="password_changed")
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="auth.password_change",
        target_type="user",
        target_id=user.id,
        details={"sessions_revoked": revoked},
    )
