"""HTTP endpoints of instances. Changes answer 202 with the operation carrying them out."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import StringConstraints

from lariba.cloud.engine import service as engine_service
from lariba.cloud.engine.models import OperationType
from lariba.cloud.engine.router import PROBLEMS, accepted
from lariba.cloud.engine.runtime import Cloud, Jobs
from lariba.cloud.engine.schemas import EventOut, OperationOut
from lariba.cloud.instances import service
from lariba.cloud.instances.schemas import (
    ConsoleOut,
    InstanceCreate,
    InstanceOut,
    LabelsUpdate,
    ResizeRequest,
)
from lariba.core.db import DbSession
from lariba.core.pagination import Page, PageParams, SequencePageParams
from lariba.identity.audit import Context
from lariba.identity.authz import ProjectMember, ProjectViewer

router = APIRouter(tags=["instances"])

InstanceId = Annotated[uuid.UUID, Path(description="Instance id.")]
Status = Literal[
    "pending", "provisioning", "running", "stopping", "stopped", "deleting", "deleted", "error"
]

LabelSelector = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,62}(=[A-Za-z0-9_.-]{0,63})?$")
]

_CHANGE_PROBLEMS: dict[int | str, dict[str, str]] = {
    **PROBLEMS,
    403: {"description": "Role too low (`insufficient_role`) or quota exceeded (`quota_exceeded`)"},
    409: {
        "description": "Another operation is running (`operation_in_progress`, naming it), "
        "the instance cannot do this in its state (`invalid_state`), or the name is taken"
    },
}


@router.post(
    "/v1/projects/{project_id}/instances",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Create an instance",
    description="Answers 202 with the `create` operation; `resource.id` is the instance's id. "
    "Poll the operation, or the instance, until it is `running`.",
    responses=_CHANGE_PROBLEMS,
)
async def create_instance(
    body: InstanceCreate,
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.create_instance(
        session, cloud=cloud, jobs=jobs.app, access=access, body=body, ctx=ctx
    )
    return accepted(response, operation)


@router.get(
    "/v1/projects/{project_id}/instances",
    response_model=Page[InstanceOut],
    summary="List instances (deleted ones only when asked for by status)",
    responses=PROBLEMS,
)
async def list_instances(
    access: ProjectViewer,
    session: DbSession,
    page: PageParams,
    status: Annotated[
        list[Status] | None, Query(description="Only these statuses (repeatable).")
    ] = None,
    label: Annotated[
        list[LabelSelector] | None,
        Query(description="`key=value` or `key` (repeatable; all must match).", max_length=16),
    ] = None,
) -> Page[InstanceOut]:
    return await service.list_instances(
        session, access=access, page=page, statuses=status or [], labels=label or []
    )


@router.get(
    "/v1/projects/{project_id}/instances/{instance_id}",
    response_model=InstanceOut,
    summary="Get an instance",
    responses=PROBLEMS,
)
async def get_instance(
    access: ProjectViewer, session: DbSession, instance_id: InstanceId
) -> InstanceOut:
    return InstanceOut.of(
        await service.load_instance(session, access=access, instance_id=instance_id)
    )


@router.patch(
    "/v1/projects/{project_id}/instances/{instance_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Replace an instance's labels",
    description="Labels are kept by Lariba only, so the `update` operation is already "
    "`succeeded` in the answer.",
    responses=_CHANGE_PROBLEMS,
)
async def update_instance(
    body: LabelsUpdate,
    access: ProjectMember,
    session: DbSession,
    instance_id: InstanceId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.update_labels(
        session, access=access, instance_id=instance_id, labels=body.labels, ctx=ctx
    )
    return accepted(response, operation)


async def _power(
    action: OperationType,
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    instance_id: uuid.UUID,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.power_action(
        session, jobs=jobs.app, access=access, instance_id=instance_id, action=action, ctx=ctx
    )
    return accepted(response, operation)


@router.post(
    "/v1/projects/{project_id}/instances/{instance_id}/start",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Start a stopped instance",
    responses=_CHANGE_PROBLEMS,
)
async def start_instance(
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    instance_id: InstanceId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    return await _power(OperationType.start, access, session, jobs, instance_id, ctx, response)


@router.post(
    "/v1/projects/{project_id}/instances/{instance_id}/stop",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Stop a running instance",
    responses=_CHANGE_PROBLEMS,
)
async def stop_instance(
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    instance_id: InstanceId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    return await _power(OperationType.stop, access, session, jobs, instance_id, ctx, response)


@router.post(
    "/v1/projects/{project_id}/instances/{instance_id}/reboot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Reboot a running instance",
    responses=_CHANGE_PROBLEMS,
)
async def reboot_instance(
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    instance_id: InstanceId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    return await _power(OperationType.reboot, access, session, jobs, instance_id, ctx, response)


@router.post(
    "/v1/projects/{project_id}/instances/{instance_id}/resize",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Change an instance's size (a running one is stopped and started again)",
    responses=_CHANGE_PROBLEMS,
)
async def resize_instance(
    body: ResizeRequest,
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    instance_id: InstanceId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.resize(
        session,
        cloud=cloud,
        jobs=jobs.app,
        access=access,
        instance_id=instance_id,
        size_name=body.size,
        ctx=ctx,
    )
    return accepted(response, operation)


@router.delete(
    "/v1/projects/{project_id}/instances/{instance_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Delete an instance",
    description="Supersedes an operation still running on the instance.",
    responses=_CHANGE_PROBLEMS,
)
async def delete_instance(
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    instance_id: InstanceId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.delete_instance(
        session, jobs=jobs.app, access=access, instance_id=instance_id, ctx=ctx
    )
    return accepted(response, operation)


@router.get(
    "/v1/projects/{project_id}/instances/{instance_id}/console",
    response_model=ConsoleOut,
    summary="An instance's console output",
    responses={**PROBLEMS, 503: {"description": "The provider did not answer"}},
)
async def console_output(
    access: ProjectViewer, session: DbSession, cloud: Cloud, instance_id: InstanceId
) -> ConsoleOut:
    resource = await service.load_instance(session, access=access, instance_id=instance_id)
    return await service.console_output(cloud, resource)


@router.get(
    "/v1/projects/{project_id}/instances/{instance_id}/operations",
    response_model=Page[OperationOut],
    summary="An instance's operations, oldest first",
    responses=PROBLEMS,
)
async def instance_operations(
    access: ProjectViewer, session: DbSession, instance_id: InstanceId, page: PageParams
) -> Page[OperationOut]:
    resource = await service.load_instance(session, access=access, instance_id=instance_id)
    return await engine_service.list_operations(
        session, project_id=access.project.id, page=page, resource_id=resource.id
    )


@router.get(
    "/v1/projects/{project_id}/instances/{instance_id}/events",
    response_model=Page[EventOut],
    summary="An instance's events (status changes, drift), newest first",
    responses=PROBLEMS,
)
async def instance_events(
    access: ProjectViewer, session: DbSession, instance_id: InstanceId, page: SequencePageParams
) -> Page[EventOut]:
    resource = await service.load_instance(session, access=access, instance_id=instance_id)
    return await engine_service.list_events(
        session, project_id=access.project.id, page=page, resource_id=resource.id
    )
