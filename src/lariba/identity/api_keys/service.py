"""Use cases of the API key endpoints: creating, listing, reading and revoking the caller's keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import Conflict, InvalidInput, NotFound
from lariba.core.pagination import Page, PageRequest, fetch_page
from lariba.identity import audit
from lariba.identity.api_keys.schemas import (
    MAX_API_KEY_LIFETIME_DAYS,
    ApiKeyCreated,
    ApiKeyOut,
)
from lariba.identity.api_keys.secret import display_prefix, generate_api_key, hash_api_key
from lariba.identity.audit import RequestContext
from lariba.identity.authn import Principal
from lariba.identity.authz import load_project
from lariba.identity.models import ApiKey, Role, User

# Keys nobody revokes pile up; a cap makes a runaway script fail loudly instead.
MAX_ACTIVE_API_KEYS = 50


def _check_expiry(expires_at: datetime | None, *, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at <= now:
        raise InvalidInput("expires_at", "must be in the future", code="expires_at_not_in_future")
    if expires_at > now + timedelta(days=MAX_API_KEY_LIFETIME_DAYS):
        raise InvalidInput(
            "expires_at",
            f"must be at most {MAX_API_KEY_LIFETIME_DAYS} days ahead",
            code="expires_at_too_far",
        )


async def _count_active_keys(session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    return int(count or 0)


async def create_api_key(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    principal: Principal,
    name: str,
    project_id: uuid.UUID | None,
    role: Role | None,
    expires_at: datetime | None,
) -> ApiKeyCreated:
    """Creates a key for the caller and returns it, the only time it is ever shown."""
    now = datetime.now(UTC)
    _check_expiry(expires_at, now=now)
    if project_id is not None:
        await load_project(session, principal, project_id)
    # Locking the user serialises concurrent creations, so the cap holds.
    await session.get(User, principal.user_id, with_for_update=True)
    if await _count_active_keys(session, user_id=principal.user_id, now=now) >= MAX_ACTIVE_API_KEYS:
        raise Conflict(
            f"You already have {MAX_ACTIVE_API_KEYS} active API keys; revoke one you no "
            "longer use first.",
            code="api_key_limit_reached",
            extra={"limit": MAX_ACTIVE_API_KEYS},
        )
    key = generate_api_key()
    api_key = ApiKey(
        user_id=principal.user_id,
        name=name,
        prefix=display_prefix(key),
        key_hash=hash_api_key(key),
        project_id=project_id,
        role=role,
        expires_at=expires_at,
    )
    session.add(api_key)
    await session.flush()
    await session.refresh(api_key)
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="api_key.create",
        target_type="api_key",
        target_id=api_key.id,
        project_id=project_id,
        details={
            "name": name,
            "prefix": api_key.prefix,
            "project_id": str(project_id) if project_id else None,
            "role": role.value if role else None,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return ApiKeyCreated(**ApiKeyOut.model_validate(api_key).model_dump(), key=key)


async def list_api_keys(
    session: AsyncSession, *, principal: Principal, page: PageRequest
) -> Page[ApiKeyOut]:
    """The caller's keys, oldest first, revoked and expired ones included."""
    rows, next_cursor = await fetch_page(
        session,
        select(ApiKey).where(ApiKey.user_id == principal.user_id),
        page=page,
        created_at=ApiKey.created_at,
        ident=ApiKey.id,
    )
    return Page[ApiKeyOut](
        items=[ApiKeyOut.model_validate(row.ApiKey) for row in rows], next_cursor=next_cursor
    )


async def get_api_key(
    session: AsyncSession, *, principal: Principal, api_key_id: uuid.UUID, lock: bool = False
) -> ApiKey:
    """One of the caller's keys; another user's key is as unknown as a made-up id."""
    stmt = select(ApiKey).where(ApiKey.id == api_key_id, ApiKey.user_id == principal.user_id)
    if lock:
        stmt = stmt.with_for_update()
    api_key = await session.scalar(stmt)
    if api_key is None:
        raise NotFound(f"API key {api_key_id} not found.", code="api_key_not_found")
    return api_key


async def revoke_api_key(
    session: AsyncSession, *, ctx: RequestContext, principal: Principal, api_key_id: uuid.UUID
) -> None:
    """Revokes the key at once. Revoking a revoked key changes nothing."""
    api_key = await get_api_key(session, principal=principal, api_key_id=api_key_id, lock=True)
    if api_key.revoked_at is not None:
        return
    api_key.revoked_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="api_key.revoke",
        target_type="api_key",
        target_id=api_key.id,
        project_id=api_key.project_id,
        details={"name": api_key.name, "prefix": api_key.prefix},
    )
