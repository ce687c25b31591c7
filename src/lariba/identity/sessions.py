"""Login sessions (refresh token families): creating, rotating and revoking them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.audit import RequestContext
from lariba.identity.auth.schemas import TokenResponse
from lariba.identity.models import AuthSession, RefreshToken
from lariba.identity.runtime import IdentityRuntime


async def issue_tokens(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    auth_session: AuthSession,
) -> TokenResponse:
    """A fresh access token and a new refresh token of the session's family."""
    refresh = RefreshToken(id=uuid.uuid4(), session_id=auth_session.id)
    session.add(refresh)
    await session.flush()
    settings = runtime.settings
    remaining = int((auth_session.expires_at - datetime.now(UTC)).total_seconds())
    access = await runtime.keyring.issue(
        use="access",
        user_id=auth_session.user_id,
        session_id=auth_session.id,
        ttl_seconds=min(settings.access_token_ttl_seconds, max(remaining, 1)),
    )
    refresh_token = await runtime.keyring.issue(
        use="refresh",
        user_id=auth_session.user_id,
        session_id=auth_session.id,
        token_id=refresh.id,
        ttl_seconds=max(remaining, 1),
    )
    return TokenResponse(
        access_token=access.token,
        expires_in=access.expires_in,
        refresh_token=refresh_token.token,
        refresh_expires_in=refresh_token.expires_in,
    )


async def start_session(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    user_id: uuid.UUID,
    ctx: RequestContext,
) -> tuple[AuthSession, TokenResponse]:
    auth_session = AuthSession(
        id=uuid.uuid4(),
        user_id=user_id,
        expires_at=datetime.now(UTC)
        + timedelta(seconds=runtime.settings.refresh_token_ttl_seconds),
        client_ip=ctx.client_ip,
        user_agent=ctx.user_agent,
    )
    session.add(auth_session)
    await session.flush()
    return auth_session, await issue_tokens(session, runtime, auth_session=auth_session)


async def revoke_sessions(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    user_id: uuid.UUID,
    reason: str,
    session_id: uuid.UUID | None = None,
) -> int:
    """Revokes one session of the user, or all of them; returns how many were open.

    This process stops trusting its memory of the user's sessions at once."""
    runtime.live_sessions.forget_user(user_id)
    stmt = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )
    if session_id is not None:
        stmt = stmt.where(AuthSession.id == session_id)
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]
