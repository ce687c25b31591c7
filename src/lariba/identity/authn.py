"""Authentication: turns a bearer token (access JWT or API key) into a Principal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.db import DbSession
from lariba.core.errors import Forbidden, Unauthorized
from lariba.identity.api_keys.secret import hash_api_key, is_well_formed, looks_like_api_key
from lariba.identity.audit import Actor
from lariba.identity.models import ApiKey, AuthSession, Role, User
from lariba.identity.runtime import IdentityRuntime, Runtime

# Updating last_used_at on every call would turn every read into a write.
_LAST_USED_RESOLUTION = timedelta(seconds=60)

bearer = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token",
    auto_error=False,
    description="An access token from /v1/auth/token, or an API key (lrb_...).",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling, and within which limits."""

    user_id: uuid.UUID
    email: str
    is_platform_admin: bool
    method: Literal["session", "api_key"]
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    # An API key may be limited to one project and capped at a role.
    project_limit: uuid.UUID | None = None
    role_limit: Role | None = None

    @property
    def actor(self) -> Actor:
        if self.method == "api_key":
            return Actor(type="api_key", id=self.api_key_id, label=self.email)
        return Actor(type="user", id=self.user_id, label=self.email)


async def principal_from_access_token(
    session: AsyncSession, runtime: IdentityRuntime, token: str
) -> Principal:
    """The person behind a valid access token of a live session, else 401."""
    claims = await runtime.keyring.verify(token, use="access")
    live = runtime.live_sessions.get(claims.session_id, user_id=claims.user_id)
    if live is not None:
        return Principal(
            user_id=claims.user_id,
            email=live.email,
            is_platform_admin=live.is_platform_admin,
            method="session",
            session_id=claims.session_id,
        )
    row = (
        await session.execute(
            select(User.email, User.is_active, User.is_platform_admin, AuthSession.revoked_at)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(AuthSession.id == claims.session_id, User.id == claims.user_id)
        )
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The session has ended; log in again.", code="session_revoked")
    if not row.is_active:
        raise Unauthorized("The account is disabled.", code="account_disabled")
    runtime.live_sessions.remember(
        claims.session_id,
        user_id=claims.user_id,
        email=row.email,
        is_platform_admin=row.is_platform_admin,
    )
    return Principal(
        user_id=claims.user_id,
        email=row.email,
        is_platform_admin=row.is_platform_admin,
        method="session",
        session_id=claims.session_id,
    )


async def _from_api_key(session: DbSession, key: str) -> Principal:
    if not is_well_formed(key):
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    now = datetime.now(UTC)
    row = (
        await session.execute(
            select(ApiKey, User.email, User.is_active, User.is_platform_admin)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == hash_api_key(key))
        )
    ).one_or_none()
    if row is None or row.ApiKey.revoked_at is not None:
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    api_key: ApiKey = row.ApiKey
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("The API key has expired.", code="api_key_expired")
    if not row.is_active:
        raise Unauthorized("The account is disabled.", code="account_disabled")
    stale = now - _LAST_USED_RESOLUTION
    if api_key.last_used_at is None or api_key.last_used_at < stale:
        # The condition again in SQL: concurrent calls with one key write once.
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == api_key.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale),
            )
            .values(last_used_at=now)
        )
    return Principal(
        user_id=api_key.user_id,
        email=row.email,
        is_platform_admin=row.is_platform_admin and api_key.project_id is None,
        method="api_key",
        api_key_id=api_key.id,
        project_limit=api_key.project_id,
        role_limit=api_key.role,
    )


async def current_principal(
    session: DbSession,
    runtime: Runtime,
    token: Annotated[str | None, Depends(bearer)],
) -> Principal:
    if not token:
        raise Unauthorized("Send an access token or API key as 'Authorization: Bearer ...'.")
    if looks_like_api_key(token):
        return await _from_api_key(session, token)
    return await principal_from_access_token(session, runtime, token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def interactive_principal(principal: CurrentPrincipal) -> Principal:
    """For credential management (password, MFA, API keys): a logged-in person, not a key."""
    if principal.method != "session":
        raise Forbidden(
            "API keys cannot manage credentials; log in with a password.",
            code="interactive_login_required",
        )
    return principal


InteractivePrincipal = Annotated[Principal, Depends(interactive_principal)]
# How routes that take an InteractivePrincipal document its refusal.
INTERACTIVE_ONLY: dict[int | str, dict[str, str]] = {
    403: {"description": "Called with an API key: `interactive_login_required`"}
}


async def platform_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_platform_admin:
        raise Forbidden("Platform admins only.", code="platform_admin_required")
    return principal


PlatformAdmin = Annotated[Principal, Depends(platform_admin)]
