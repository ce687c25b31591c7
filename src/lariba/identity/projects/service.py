"""Use cases of projects: creating, reading, changing and deleting them, their members and
the transfer of ownership. Invitations are in ``invitations.py``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from lariba.core.pagination import Page, PageRequest, fetch_page
from lariba.identity import audit
from lariba.identity.audit import RequestContext
from lariba.identity.authn import Principal
from lariba.identity.authz import ProjectAccess, effective_role, scoped_projects
from lariba.identity.models import Membership, Project, Role, User
from lariba.identity.projects.schemas import MemberOut, ProjectOut

# What PostgreSQL raises when a trigger refuses the deletion of a project in use.
RESTRICT_VIOLATION = "23001"


async def create_project(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    principal: Principal,
    name: str,
    description: str | None,
) -> ProjectOut:
    """Creates a project owned by the caller."""
    if principal.project_limit is not None:
        raise Forbidden(
            "This API key is limited to one project and cannot create projects; "
            "use a key without a project limit, or log in.",
            code="api_key_project_limited",
        )
    project = Project(id=uuid.uuid4(), name=name, description=description)
    session.add(project)
    await session.flush()
    session.add(Membership(project_id=project.id, user_id=principal.user_id, role=Role.owner))
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="project.create",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        details={"name": name},
    )
    return ProjectOut.of(project, effective_role(principal, Role.owner))


async def list_projects(
    session: AsyncSession, *, principal: Principal, page: PageRequest
) -> Page[ProjectOut]:
    """The caller's projects, in one query."""
    rows, next_cursor = await fetch_page(
        session,
        scoped_projects(principal),
        page=page,
        created_at=Project.created_at,
        ident=Project.id,
    )
    return Page(
        items=[ProjectOut.of(row.Project, effective_role(principal, row.role)) for row in rows],
        next_cursor=next_cursor,
    )


async def update_project(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    access: ProjectAccess,
    changes: Mapping[str, Any],
) -> ProjectOut:
    """Applies ``changes`` (the fields the client sent: name, description)."""
    project = access.project
    changed = {field: value for field, value in changes.items() if getattr(project, field) != value}
    if changed:
        for field, value in changed.items():
            setattr(project, field, value)
        await session.flush()
        await session.refresh(project)
        await audit.record(
            session,
            ctx=ctx,
            actor=access.principal.actor,
            action="project.update",
            target_type="project",
            target_id=project.id,
            project_id=project.id,
            details={"changed": sorted(changed)},
        )
    return ProjectOut.of(project, access.role)


async def delete_project(
    session: AsyncSession, *, ctx: RequestContext, access: ProjectAccess
) -> None:
    """Deletes the project; its memberships, invitations and API keys go with it. A
    project whose resources are not all deleted stays (a database trigger refuses)."""
    project = access.project
    try:
        async with session.begin_nested():
            await session.delete(project)
            await session.flush()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != RESTRICT_VIOLATION:
            raise
        raise Conflict(
            "The project still has resources; delete them first, then the project.",
            code="project_not_empty",
        ) from None
    await audit.record(
        session,
        ctx=ctx,
        actor=access.principal.actor,
        action="project.delete",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        details={"name": project.name},
    )


def _member_out(row: Row[Any]) -> MemberOut:
    membership: Membership = row.Membership
    return MemberOut(
        user_id=membership.user_id,
        email=row.email,
        display_name=row.display_name,
        role=membership.role,
        joined_at=membership.created_at,
    )


def _members(project_id: uuid.UUID) -> Any:
    return (
        select(Membership, User.email, User.display_name)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id)
    )


async def _member(session: AsyncSession, *, project_id: uuid.UUID, user_id: uuid.UUID) -> Row[Any]:
    """One member, its row locked so concurrent role changes and removals serialise."""
    row = (
        await session.execute(
            _members(project_id).where(Membership.user_id == user_id).with_for_update(of=Membership)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"User {user_id} is not a member of this project.", code="member_not_found")
    return row


async def list_members(
    session: AsyncSession, *, access: ProjectAccess, page: PageRequest
) -> Page[MemberOut]:
    rows, next_cursor = await fetch_page(
        session,
        _members(access.project.id),
        page=page,
        created_at=Membership.created_at,
        ident=Membership.user_id,
    )
    return Page(items=[_member_out(row) for row in rows], next_cursor=next_cursor)


async def change_member_role(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    access: ProjectAccess,
    user_id: uuid.UUID,
    role: Role,
) -> MemberOut:
    row = await _member(session, project_id=access.project.id, user_id=user_id)
    membership: Membership = row.Membership
    if membership.role == Role.owner:
        raise Forbidden(
            "The owner's role cannot be changed; transfer the ownership to another member "
            "first (POST /v1/projects/{project_id}/transfer-ownership).",
            code="owner_role_locked",
        )
    previous = membership.role
    if previous != role:
        membership.role = role
        await session.flush()
        await audit.record(
            session,
            ctx=ctx,
            actor=access.principal.actor,
            action="member.role_change",
            target_type="user",
            target_id=user_id,
            project_id=access.project.id,
            details={"from": previous, "to": role},
        )
    return _member_out(row)


async def remove_member(
    session: AsyncSession, *, ctx: RequestContext, access: ProjectAccess, user_id: uuid.UUID
) -> None:
    """Removes a member (admins and up), or the caller themself (leaving)."""
    leaving = user_id == access.principal.user_id
    if not leaving:
        access.require(Role.admin)
    row = await _member(session, project_id=access.project.id, user_id=user_id)
    membership: Membership = row.Membership
    if membership.role == Role.owner:
        raise Conflict(
            "The owner cannot leave or be removed; transfer the ownership to another member "
            "first (POST /v1/projects/{project_id}/transfer-ownership).",
            code="owner_cannot_leave",
        )
    await session.delete(membership)
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=access.principal.actor,
        action="member.leave" if leaving else "member.remove",
        target_type="user",
        target_id=user_id,
        project_id=access.project.id,
        details={"role": membership.role},
    )


async def transfer_ownership(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    access: ProjectAccess,
    user_id: uuid.UUID,
) -> ProjectOut:
    """Makes a member the owner; the previous owner stays on as admin."""
    principal = access.principal
    project_id = access.project.id
    # Locking the owner's row first serialises transfers: a second concurrent transfer
    # waits here, then finds the caller is no longer the owner.
    current = (await _member(session, project_id=project_id, user_id=principal.user_id)).Membership
    if current.role != Role.owner:
        raise Forbidden(
            "Only the project owner can transfer the ownership.", code="insufficient_role"
        )
    if user_id == principal.user_id:
        raise InvalidInput("user_id", "is already the owner", code="already_owner")
    target = (await _member(session, project_id=project_id, user_id=user_id)).Membership
    previous_role = target.role
    # One owner per project (a partial unique index): demote before promoting.
    current.role = Role.admin
    await session.flush()
    target.role = Role.owner
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="project.transfer_ownership",
        target_type="user",
        target_id=user_id,
        project_id=project_id,
        details={
            "from_user_id": str(principal.user_id),
            "to_user_id": str(user_id),
            "to_user_previous_role": previous_role,
        },
    )
    return ProjectOut.of(access.project, effective_role(principal, Role.admin))
