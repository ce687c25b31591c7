"""HTTP endpoints of operations, resource events and quotas."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from lariba.cloud.engine import quotas, service
from lariba.cloud.engine.runtime import Cloud
from lariba.cloud.engine.schemas import EventOut, OperationOut, QuotaList, QuotaOut, QuotaUpdate
from lariba.core.db import DbSession
from lariba.core.errors import NotFound
from lariba.core.pagination import Page, PageParams, SequencePageParams
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED
from lariba.identity import audit
from lariba.identity.audit import Context
from lariba.identity.authn import PlatformAdmin
from lariba.identity.authz import ProjectViewer
from lariba.identity.models import Project
from lariba.monitoring.events.live import LIVE_EVENTS_RESPONSES, LiveEvents, live_events

router = APIRouter(tags=["operations"])

PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    404: {"description": "No such project or resource, or not yours"},
    **INVALID_INPUT,
}


def accepted(response: Response, operation: OperationOut) -> OperationOut:
    """A change's 202: the operation, and where to poll it."""
    response.headers["Location"] = f"/v1/projects/{operation.project_id}/operations/{operation.id}"
    return operation


OperationId = Annotated[uuid.UUID, Path(description="Operation id.")]
OperationStatusFilter = Annotated[
    Literal["pending", "running", "succeeded", "failed"] | None,
    Query(description="Only operations in this status."),
]


@router.get(
    "/v1/projects/{project_id}/operations",
    response_model=Page[OperationOut],
    summary="List the project's operations, oldest first",
    responses=PROBLEMS,
)
async def list_operations(
    access: ProjectViewer,
    session: DbSession,
    page: PageParams,
    resource_id: Annotated[
        uuid.UUID | None, Query(description="Only the operations of this resource.")
    ] = None,
    status: OperationStatusFilter = None,
) -> Page[OperationOut]:
    return await service.list_operations(
        session, project_id=access.project.id, page=page, resource_id=resource_id, status=status
    )


@router.get(
    "/v1/projects/{project_id}/operations/{operation_id}",
    response_model=OperationOut,
    summary="Get an operation (poll it until it succeeds or fails)",
    responses=PROBLEMS,
)
async def get_operation(
    access: ProjectViewer, session: DbSession, operation_id: OperationId
) -> OperationOut:
    return await service.get_operation(
        session, project_id=access.project.id, operation_id=operation_id
    )


@router.get(
    "/v1/projects/{project_id}/events",
    response_model=Page[EventOut],
    summary="The project's resource events, newest first (or live as server-sent events)",
    responses={**PROBLEMS, **LIVE_EVENTS_RESPONSES},
)
async def list_events(
    request: Request,
    access: ProjectViewer,
    session: DbSession,
    page: SequencePageParams,
    live: LiveEvents,
) -> Page[EventOut] | Response:
    if live is not None:
        return await live_events(request, session, project_id=access.project.id, live=live)
    return await service.list_events(session, project_id=access.project.id, page=page)


@router.get(
    "/v1/projects/{project_id}/quotas",
    response_model=QuotaList,
    summary="The project's quotas: limit, in use, reserved",
    responses=PROBLEMS,
)
async def get_quotas(access: ProjectViewer, session: DbSession, cloud: Cloud) -> QuotaList:
    uses = await quotas.quota_use(session, settings=cloud.settings, project_id=access.project.id)
    return QuotaList(items=[QuotaOut.of(use) for use in uses])


@router.put(
    "/v1/admin/projects/{project_id}/quotas",
    response_model=QuotaList,
    summary="Set a project's quotas (platform admin)",
    tags=["admin"],
    responses={
        **PROBLEMS,
        403: {"description": "Not a platform admin (`platform_admin_required`)"},
    },
)
async def set_quotas(
    body: QuotaUpdate,
    admin: PlatformAdmin,
    session: DbSession,
    cloud: Cloud,
    ctx: Context,
    project_id: Annotated[uuid.UUID, Path(description="Project id.")],
) -> QuotaList:
    if await session.get(Project, project_id) is None:
        raise NotFound(f"Project {project_id} not found.", code="project_not_found")
    limits = body.model_dump(exclude_none=True)
    await quotas.set_limits(session, project_id=project_id, limits=limits)
    await audit.record(
        session,
        ctx=ctx,
        actor=admin.actor,
        action="quota.update",
        target_type="project",
        target_id=project_id,
        project_id=project_id,
        details=limits,
    )
    uses = await quotas.quota_use(session, settings=cloud.settings, project_id=project_id)
    return QuotaList(items=[QuotaOut.of(use) for use in uses])
