"""Use cases of platform administration: every user, every project and the audit trail."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from lariba.core.errors import Conflict, NotFound
from lariba.core.pagination import (
    Page,
    PageRequest,
    SequencePageRequest,
    fetch_page,
    fetch_page_newest_first,
)
from lariba.identity import audit
from lariba.identity.admin.schemas import AdminProjectOut, AdminUserOut, AuditEventOut
from lariba.identity.audit import AuditFilter, RequestContext, select_audit_events
from lariba.identity.authn import Principal
from lariba.identity.models import AuditEvent, Membership, Project, Role, User
from lariba.identity.runtime import IdentityRuntime
from lariba.identity.sessions import revoke_sessions


async def list_users(
    session: AsyncSession, *, page: PageRequest, email: str | None
) -> Page[AdminUserOut]:
    stmt = select(User)
    if email:
        stmt = stmt.where(User.email.icontains(email.strip(), autoescape=True))
    rows, next_cursor = await fetch_page(
        session, stmt, page=page, created_at=User.created_at, ident=User.id
    )
    return Page(
        items=[AdminUserOut.model_validate(row.User) for row in rows], next_cursor=next_cursor
    )


async def update_user(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    user_id: uuid.UUID,
    is_active: bool | None,
    is_platform_admin: bool | None,
) -> AdminUserOut:
    """Enables or disables an account, grants or takes platform admin. Disabling ends every
    session of the account at once."""
    if user_id == principal.user_id and (is_active is False or is_platform_admin is False):
        raise Conflict(
            "You cannot disable your own account or remove your own admin rights; "
            "ask another platform admin.",
            code="cannot_change_self",
        )
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"User {user_id} not found.", code="user_not_found")
    changes: dict[str, Any] = {}
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        changes["is_active"] = is_active
    if is_platform_admin is not None and is_platform_admin != user.is_platform_admin:
        user.is_platform_admin = is_platform_admin
        changes["is_platform_admin"] = is_platform_admin
    if not changes:
        return AdminUserOut.model_validate(user)
    details: dict[str, Any] = {"changes": changes}
    # Rights are remembered with live sessions: forget them so the change applies now.
    runtime.live_sessions.forget_user(user.id)
    if changes.get("is_active") is False:
        details["sessions_revoked"] = await revoke_sessions(
            session, runtime, user_id=user.id, reason="account_disabled"
        )
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="admin.user_update",
        target_type="user",
        target_id=user.id,
        details=details,
    )
    return AdminUserOut.model_validate(user)


async def list_projects(session: AsyncSession, *, page: PageRequest) -> Page[AdminProjectOut]:
    owner = aliased(Membership)
    member_count = (
        select(func.count())
        .where(Membership.project_id == Project.id)
        .correlate(Project)
        .scalar_subquery()
    )
    stmt = (
        select(
            Project,
            member_count.label("member_count"),
            owner.user_id.label("owner_id"),
            User.email.label("owner_email"),
        )
        .outerjoin(owner, and_(owner.project_id == Project.id, owner.role == Role.owner))
        .outerjoin(User, User.id == owner.user_id)
    )
    rows, next_cursor = await fetch_page(
        session, stmt, page=page, created_at=Project.created_at, ident=Project.id
    )
    return Page(
        items=[
            AdminProjectOut(
                id=row.Project.id,
                name=row.Project.name,
                description=row.Project.description,
                owner_id=row.owner_id,
                owner_email=row.owner_email,
                member_count=row.member_count,
                created_at=row.Project.created_at,
                updated_at=row.Project.updated_at,
            )
            for row in rows
        ],
        next_cursor=next_cursor,
    )


async def list_audit(
    session: AsyncSession, *, page: SequencePageRequest, where: AuditFilter
) -> Page[AuditEventOut]:
    """Audit events, newest first."""
    rows, next_cursor = await fetch_page_newest_first(
        session, select_audit_events(where), page=page, ident=AuditEvent.id
    )
    return Page(
        items=[AuditEventOut.model_validate(row.AuditEvent) for row in rows],
        next_cursor=next_cursor,
    )
