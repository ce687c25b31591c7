"""HTTP endpoints of platform administration (platform admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime

from lariba.core.db import DbSession
from lariba.core.pagination import Page, PageParams, SequencePageParams
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED
from lariba.core.timestamps import ISO_8601
from lariba.identity.admin import service
from lariba.identity.admin.schemas import (
    AdminProjectOut,
    AdminUserOut,
    AdminUserUpdate,
    AuditEventOut,
)
from lariba.identity.audit import AuditFilter, Context
from lariba.identity.authn import PlatformAdmin
from lariba.identity.runtime import Runtime

router = APIRouter(tags=["admin"])

_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    403: {"description": "Not a platform admin (`platform_admin_required`)"},
    **INVALID_INPUT,
}


@router.get(
    "/v1/admin/users",
    response_model=Page[AdminUserOut],
    summary="List every user",
    responses=_PROBLEMS,
)
async def list_users(
    admin: PlatformAdmin,
    session: DbSession,
    page: PageParams,
    email: Annotated[
        str | None, Query(max_length=320, description="Only e-mails containing this text.")
    ] = None,
) -> Page[AdminUserOut]:
    return await service.list_users(session, page=page, email=email)


@router.patch(
    "/v1/admin/users/{user_id}",
    response_model=AdminUserOut,
    summary="Enable or disable a user, grant or take platform admin",
    responses={
        404: {"description": "No such user"},
        409: {"description": "Admins cannot disable or demote themselves"},
        **_PROBLEMS,
    },
)
async def update_user(
    user_id: Annotated[uuid.UUID, Path(description="User id.")],
    body: AdminUserUpdate,
    admin: PlatformAdmin,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> AdminUserOut:
    return await service.update_user(
        session,
        runtime,
        ctx=ctx,
        principal=admin,
        user_id=user_id,
        is_active=body.is_active,
        is_platform_admin=body.is_platform_admin,
    )


@router.get(
    "/v1/admin/projects",
    response_model=Page[AdminProjectOut],
    summary="List every project, with its owner and member count",
    responses=_PROBLEMS,
)
async def list_projects(
    admin: PlatformAdmin, session: DbSession, page: PageParams
) -> Page[AdminProjectOut]:
    return await service.list_projects(session, page=page)


async def admin_audit_filter(
    actor_id: Annotated[uuid.UUID | None, Query(description="Who acted.")] = None,
    action: Annotated[
        str | None,
        Query(max_length=64, description="e.g. project.create, or a prefix ending in a dot."),
    ] = None,
    target_id: Annotated[str | None, Query(max_length=64, description="What was acted on.")] = None,
    project_id: Annotated[uuid.UUID | None, Query(description="Within this project.")] = None,
    since: Annotated[
        AwareDatetime | None,
        ISO_8601,
        Query(description="Events at or after (ISO 8601, with zone)."),
    ] = None,
    until: Annotated[
        AwareDatetime | None,
        ISO_8601,
        Query(description="Events before (ISO 8601, with zone)."),
    ] = None,
) -> AuditFilter:
    """The filters of the platform's audit trail, for its search and its export."""
    return AuditFilter(
        actor_id=actor_id,
        action=action,
        target_id=target_id,
        project_id=project_id,
        since=since,
        until=until,
    )


AdminAuditFilter = Annotated[AuditFilter, Depends(admin_audit_filter)]


@router.get(
    "/v1/admin/audit",
    response_model=Page[AuditEventOut],
    summary="Search the audit trail (newest first)",
    responses=_PROBLEMS,
)
async def list_audit(
    admin: PlatformAdmin, session: DbSession, page: SequencePageParams, where: AdminAuditFilter
) -> Page[AuditEventOut]:
    return await service.list_audit(session, page=page, where=where)
