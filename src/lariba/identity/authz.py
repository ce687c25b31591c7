"""Tenant scoping. Every project-scoped query starts from ``scoped_projects``, so a project
the caller is not a member of (or that their API key does not cover) is indistinguishable
from one that does not exist: 404, never 403."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.db import DbSession
from lariba.core.errors import Forbidden, NotFound
from lariba.identity.authn import CurrentPrincipal, Principal
from lariba.identity.models import Membership, Project, Role


def scoped_projects(principal: Principal, *columns: Any) -> Select[Any]:
    """SELECT over the projects the principal may see, with their membership role.

    ``columns`` default to (Project, Membership.role).
    """
    stmt = (
        select(*(columns or (Project, Membership.role)))
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == principal.user_id)
    )
    if principal.project_limit is not None:
        stmt = stmt.where(Project.id == principal.project_limit)
    return stmt


def effective_role(principal: Principal, member_role: Role) -> Role:
    """The member's role, capped by the API key's role when the call uses a limited key."""
    if principal.role_limit is not None and member_role.rank > principal.role_limit.rank:
        return principal.role_limit
    return member_role


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: Role
    principal: Principal

    def require(self, role: Role) -> None:
        if not self.role.at_least(role):
            raise Forbidden(
                f"This needs the {role.value} role or higher in the project; "
                f"you have {self.role.value}.",
                code="insufficient_role",
                extra={"required_role": role.value, "your_role": self.role.value},
            )


async def load_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, *, lock: bool = False
) -> ProjectAccess:
    stmt = scoped_projects(principal).where(Project.id == project_id)
    if lock:
        stmt = stmt.with_for_update(of=Project)
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound(f"Project {project_id} not found.", code="project_not_found")
    return ProjectAccess(
        project=row.Project, role=effective_role(principal, row.role), principal=principal
    )


def project_access(min_role: Role) -> Callable[..., Awaitable[ProjectAccess]]:
    """Dependency for routes under /v1/projects/{project_id}: 404 unless the caller can
    see the project, 403 when they can but their role is below ``min_role``."""

    async def dependency(
        request: Request,
        session: DbSession,
        principal: CurrentPrincipal,
        project_id: Annotated[uuid.UUID, Path(description="Project id.")],
    ) -> ProjectAccess:
        access = await load_project(session, principal, project_id)
        access.require(min_role)
        # The request acted within this project (usage counts it).
        request.state.project_id = project_id
        return access

    return dependency


ProjectViewer = Annotated[ProjectAccess, Depends(project_access(Role.viewer))]
ProjectMember = Annotated[ProjectAccess, Depends(project_access(Role.member))]
ProjectAdmin = Annotated[ProjectAccess, Depends(project_access(Role.admin))]
ProjectOwner = Annotated[ProjectAccess, Depends(project_access(Role.owner))]
