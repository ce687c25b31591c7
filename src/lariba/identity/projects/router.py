"""HTTP endpoints of projects, their members and invitations, and ownership transfer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, status

from lariba.core.db import DbSession
from lariba.core.logging import register_secret_path
from lariba.core.pagination import Page, PageParams
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED, NoStore
from lariba.identity.audit import Context
from lariba.identity.authn import CurrentPrincipal, InteractivePrincipal
from lariba.identity.authz import ProjectAdmin, ProjectOwner, ProjectViewer
from lariba.identity.projects import invitations, service
from lariba.identity.projects.schemas import (
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    MemberOut,
    MemberUpdate,
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
    TransferOwnershipRequest,
)
from lariba.identity.runtime import Runtime

router = APIRouter(tags=["projects"])

# The invitation token is a secret: keep it out of logs and problem documents.
register_secret_path(r"^/v1/invitations/(?P<secret>[^/]+)/accept$")

_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    404: {"description": "No such project, or not yours (`project_not_found`)"},
    **INVALID_INPUT,
}
_ROLE_PROBLEMS: dict[int | str, dict[str, str]] = {
    403: {"description": "Your role in the project is too low (`insufficient_role`)"},
    **_PROBLEMS,
}

MemberId = Annotated[uuid.UUID, Path(description="User id of the member.")]
InvitationId = Annotated[uuid.UUID, Path(description="Invitation id.")]


@router.post(
    "/v1/projects",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectOut,
    summary="Create a project (you become its owner)",
    responses={403: {"description": "API key limited to a project"}, **_PROBLEMS},
)
async def create_project(
    body: ProjectCreate, principal: CurrentPrincipal, session: DbSession, ctx: Context
) -> ProjectOut:
    return await service.create_project(
        session, ctx=ctx, principal=principal, name=body.name, description=body.description
    )


@router.get(
    "/v1/projects",
    response_model=Page[ProjectOut],
    summary="List my projects",
    responses=_PROBLEMS,
)
async def list_projects(
    principal: CurrentPrincipal, session: DbSession, page: PageParams
) -> Page[ProjectOut]:
    return await service.list_projects(session, principal=principal, page=page)


@router.get(
    "/v1/projects/{project_id}",
    response_model=ProjectOut,
    summary="Get a project",
    responses=_PROBLEMS,
)
async def get_project(access: ProjectViewer) -> ProjectOut:
    return ProjectOut.of(access.project, access.role)


@router.patch(
    "/v1/projects/{project_id}",
    response_model=ProjectOut,
    summary="Rename a project or change its description (admin)",
    responses=_ROLE_PROBLEMS,
)
async def update_project(
    body: ProjectUpdate, access: ProjectAdmin, session: DbSession, ctx: Context
) -> ProjectOut:
    return await service.update_project(
        session, ctx=ctx, access=access, changes=body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/v1/projects/{project_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a project (owner)",
    responses={
        409: {"description": "Resources are left in the project (`project_not_empty`)"},
        **_ROLE_PROBLEMS,
    },
)
async def delete_project(access: ProjectOwner, session: DbSession, ctx: Context) -> None:
    await service.delete_project(session, ctx=ctx, access=access)


@router.get(
    "/v1/projects/{project_id}/members",
    response_model=Page[MemberOut],
    summary="List the members of a project",
    responses=_PROBLEMS,
)
async def list_members(
    access: ProjectViewer, session: DbSession, page: PageParams
) -> Page[MemberOut]:
    return await service.list_members(session, access=access, page=page)


@router.patch(
    "/v1/projects/{project_id}/members/{user_id}",
    response_model=MemberOut,
    summary="Change a member's role (admin)",
    responses={
        403: {"description": "Role too low, or the member is the owner (`owner_role_locked`)"},
        **_PROBLEMS,
    },
)
async def change_member_role(
    user_id: MemberId, body: MemberUpdate, access: ProjectAdmin, session: DbSession, ctx: Context
) -> MemberOut:
    return await service.change_member_role(
        session, ctx=ctx, access=access, user_id=user_id, role=body.role
    )


@router.delete(
    "/v1/projects/{project_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member (admin), or leave the project (your own user id)",
    responses={
        409: {"description": "The owner cannot leave (`owner_cannot_leave`)"},
        **_ROLE_PROBLEMS,
    },
)
async def remove_member(
    user_id: MemberId, access: ProjectViewer, session: DbSession, ctx: Context
) -> None:
    await service.remove_member(session, ctx=ctx, access=access, user_id=user_id)


@router.post(
    "/v1/projects/{project_id}/transfer-ownership",
    response_model=ProjectOut,
    summary="Make another member the owner (owner); you become an admin",
    responses=_ROLE_PROBLEMS,
)
async def transfer_ownership(
    body: TransferOwnershipRequest, access: ProjectOwner, session: DbSession, ctx: Context
) -> ProjectOut:
    return await service.transfer_ownership(session, ctx=ctx, access=access, user_id=body.user_id)


@router.post(
    "/v1/projects/{project_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationCreated,
    dependencies=[NoStore],
    summary="Invite someone by e-mail (admin)",
    responses={
        409: {"description": "Already a member (`already_member`)"},
        503: {"description": "The invitation e-mail could not be sent"},
        **_ROLE_PROBLEMS,
    },
)
async def create_invitation(
    body: InvitationCreate,
    access: ProjectAdmin,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> InvitationCreated:
    return await invitations.create_invitation(
        session, runtime, ctx=ctx, access=access, email=str(body.email), role=body.role
    )


@router.get(
    "/v1/projects/{project_id}/invitations",
    response_model=Page[InvitationOut],
    summary="List pending invitations (admin)",
    responses=_ROLE_PROBLEMS,
)
async def list_invitations(
    access: ProjectAdmin, session: DbSession, page: PageParams
) -> Page[InvitationOut]:
    return await invitations.list_pending(session, access=access, page=page)


@router.delete(
    "/v1/projects/{project_id}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a pending invitation (admin)",
    responses=_ROLE_PROBLEMS,
)
async def revoke_invitation(
    invitation_id: InvitationId, access: ProjectAdmin, session: DbSession, ctx: Context
) -> None:
    await invitations.revoke_invitation(
        session, ctx=ctx, access=access, invitation_id=invitation_id
    )


@router.post(
    "/v1/invitations/{token}/accept",
    response_model=ProjectOut,
    summary="Accept an invitation (logged in as the invited e-mail)",
    responses={
        403: {"description": "Invitation sent to another e-mail, or called with an API key"},
        404: {"description": "Unknown, expired, revoked or used invitation"},
        409: {"description": "Already a member (`already_member`)"},
        **UNAUTHENTICATED,
    },
)
async def accept_invitation(
    token: Annotated[str, Path(min_length=1, max_length=128, description="Invitation token.")],
    principal: InteractivePrincipal,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> ProjectOut:
    return await invitations.accept_invitation(
        session, runtime, ctx=ctx, principal=principal, token=token
    )
