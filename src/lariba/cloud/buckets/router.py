"""HTTP endpoints of buckets. Changes answer 202 with the operation carrying them out."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from lariba.cloud.buckets import service
from lariba.cloud.buckets.schemas import BucketCreate, BucketOut, LabelsUpdate, VersioningUpdate
from lariba.cloud.engine import service as engine_service
from lariba.cloud.engine.router import PROBLEMS, accepted
from lariba.cloud.engine.runtime import Cloud, Jobs
from lariba.cloud.engine.schemas import EventOut, OperationOut
from lariba.cloud.instances.router import LabelSelector
from lariba.core.db import DbSession
from lariba.core.pagination import Page, PageParams, SequencePageParams
from lariba.identity.audit import Context
from lariba.identity.authz import ProjectMember, ProjectViewer

router = APIRouter(tags=["buckets"])

BucketId = Annotated[uuid.UUID, Path(description="Bucket id.")]
Status = Literal[
    "pending", "provisioning", "available", "modifying", "deleting", "deleted", "error"
]

CHANGE_PROBLEMS: dict[int | str, dict[str, str]] = {
    **PROBLEMS,
    403: {"description": "Role too low (`insufficient_role`) or quota exceeded (`quota_exceeded`)"},
    409: {
        "description": "Another operation is running (`operation_in_progress`), the bucket "
        "cannot do this in its state (`invalid_state`), is not empty (`bucket_not_empty`), "
        "or the name is taken (`name_taken`)"
    },
}


@router.post(
    "/v1/projects/{project_id}/buckets",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Create a bucket",
    description="Answers 202 with the `create` operation; `resource.id` is the bucket's id. "
    "Poll the operation, or the bucket, until it is `available`.",
    responses=CHANGE_PROBLEMS,
)
async def create_bucket(
    body: BucketCreate,
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.create_bucket(
        session, cloud=cloud, jobs=jobs.app, access=access, body=body, ctx=ctx
    )
    return accepted(response, operation)


@router.get(
    "/v1/projects/{project_id}/buckets",
    response_model=Page[BucketOut],
    summary="List buckets (deleted ones only when asked for by status)",
    responses=PROBLEMS,
)
async def list_buckets(
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
) -> Page[BucketOut]:
    return await service.list_buckets(
        session, access=access, page=page, statuses=status or [], labels=label or []
    )


@router.get(
    "/v1/projects/{project_id}/buckets/{bucket_id}",
    response_model=BucketOut,
    summary="Get a bucket, with its object count and bytes",
    responses=PROBLEMS,
)
async def get_bucket(
    access: ProjectViewer, session: DbSession, cloud: Cloud, bucket_id: BucketId
) -> BucketOut:
    resource = await service.load_bucket(session, access=access, bucket_id=bucket_id)
    return await service.get_bucket(cloud, resource)


@router.patch(
    "/v1/projects/{project_id}/buckets/{bucket_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Replace a bucket's labels",
    description="Labels are kept by Lariba only, so the `update` operation is already "
    "`succeeded` in the answer.",
    responses=CHANGE_PROBLEMS,
)
async def update_bucket(
    body: LabelsUpdate,
    access: ProjectMember,
    session: DbSession,
    bucket_id: BucketId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.update_labels(
        session, access=access, bucket_id=bucket_id, labels=body.labels, ctx=ctx
    )
    return accepted(response, operation)


@router.put(
    "/v1/projects/{project_id}/buckets/{bucket_id}/versioning",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Turn a bucket's versioning on or off",
    description="An `update` operation; the bucket is `modifying` until the provider has it.",
    responses=CHANGE_PROBLEMS,
)
async def set_versioning(
    body: VersioningUpdate,
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    bucket_id: BucketId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.set_versioning(
        session, jobs=jobs.app, access=access, bucket_id=bucket_id, enabled=body.enabled, ctx=ctx
    )
    return accepted(response, operation)


@router.delete(
    "/v1/projects/{project_id}/buckets/{bucket_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Delete a bucket",
    description="Refused with 409 `bucket_not_empty` while it holds objects, unless "
    "`force=true`, which deletes every object (and unfinished upload) too.",
    responses=CHANGE_PROBLEMS,
)
async def delete_bucket(
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    bucket_id: BucketId,
    ctx: Context,
    response: Response,
    force: Annotated[bool, Query(description="Delete the objects too.")] = False,
) -> OperationOut:
    operation = await service.delete_bucket(
        session,
        cloud=cloud,
        jobs=jobs.app,
        access=access,
        bucket_id=bucket_id,
        force=force,
        ctx=ctx,
    )
    return accepted(response, operation)


@router.get(
    "/v1/projects/{project_id}/buckets/{bucket_id}/operations",
    response_model=Page[OperationOut],
    summary="A bucket's operations, oldest first",
    responses=PROBLEMS,
)
async def bucket_operations(
    access: ProjectViewer, session: DbSession, bucket_id: BucketId, page: PageParams
) -> Page[OperationOut]:
    resource = await service.load_bucket(session, access=access, bucket_id=bucket_id)
    return await engine_service.list_operations(
        session, project_id=access.project.id, page=page, resource_id=resource.id
    )


@router.get(
    "/v1/projects/{project_id}/buckets/{bucket_id}/events",
    response_model=Page[EventOut],
    summary="A bucket's events (status changes, drift), newest first",
    responses=PROBLEMS,
)
async def bucket_events(
    access: ProjectViewer, session: DbSession, bucket_id: BucketId, page: SequencePageParams
) -> Page[EventOut]:
    resource = await service.load_bucket(session, access=access, bucket_id=bucket_id)
    return await engine_service.list_events(
        session, project_id=access.project.id, page=page, resource_id=resource.id
    )
