"""HTTP endpoints of databases and their snapshots. Changes answer 202 with the operation
carrying them out; the ones that make a password also show it, once."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from lariba.cloud.databases import service, snapshots
from lariba.cloud.databases.schemas import (
    Credentials,
    DatabaseAccepted,
    DatabaseCreate,
    DatabaseOut,
    DatabaseResize,
    DatabaseUpdate,
    MetricsOut,
    SnapshotCreate,
    SnapshotOut,
    SnapshotRestore,
)
from lariba.cloud.engine import service as engine_service
from lariba.cloud.engine.router import PROBLEMS, accepted
from lariba.cloud.engine.runtime import Cloud, Jobs
from lariba.cloud.engine.schemas import EventOut, OperationOut
from lariba.cloud.instances.router import LabelSelector
from lariba.core.db import DbSession
from lariba.core.pagination import Page, PageParams, SequencePageParams
from lariba.core.responses import NoStore
from lariba.identity.audit import Context
from lariba.identity.authz import ProjectAdmin, ProjectMember, ProjectViewer

router = APIRouter(tags=["databases"])

DatabaseId = Annotated[uuid.UUID, Path(description="Database id.")]
SnapshotId = Annotated[uuid.UUID, Path(description="Database snapshot id.")]
Status = Literal[
    "pending", "provisioning", "available", "modifying", "deleting", "deleted", "error"
]
StatusFilter = Annotated[
    list[Status] | None, Query(description="Only these statuses (repeatable).")
]

_CHANGE_PROBLEMS: dict[int | str, dict[str, str]] = {
    **PROBLEMS,
    403: {"description": "Role too low (`insufficient_role`) or quota exceeded (`quota_exceeded`)"},
    409: {
        "description": "Another operation is running (`operation_in_progress`), the database "
        "cannot do this in its state (`invalid_state`, `deletion_protected`, "
        "`size_unchanged`), or the name is taken (`name_taken`)"
    },
}
_ONCE = "The response carries the password: shown here once, `Cache-Control: no-store`."


@router.post(
    "/v1/projects/{project_id}/databases",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatabaseAccepted,
    summary="Create a database",
    description="Answers 202 with the `create` operation and the database's `credentials`. "
    + _ONCE,
    responses=_CHANGE_PROBLEMS,
    dependencies=[NoStore],
)
async def create_database(
    body: DatabaseCreate,
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    ctx: Context,
    response: Response,
) -> DatabaseAccepted:
    answer = await service.create_database(
        session, cloud=cloud, jobs=jobs.app, access=access, body=body, ctx=ctx
    )
    accepted(response, answer)
    return answer


@router.get(
    "/v1/projects/{project_id}/databases",
    response_model=Page[DatabaseOut],
    summary="List databases (deleted ones only when asked for by status)",
    responses=PROBLEMS,
)
async def list_databases(
    access: ProjectViewer,
    session: DbSession,
    page: PageParams,
    status: StatusFilter = None,
    label: Annotated[
        list[LabelSelector] | None,
        Query(description="`key=value` or `key` (repeatable; all must match).", max_length=16),
    ] = None,
) -> Page[DatabaseOut]:
    return await service.list_databases(
        session, access=access, page=page, statuses=status or [], labels=label or []
    )


@router.get(
    "/v1/projects/{project_id}/databases/{database_id}",
    response_model=DatabaseOut,
    summary="Get a database",
    responses=PROBLEMS,
)
async def get_database(
    access: ProjectViewer, session: DbSession, database_id: DatabaseId
) -> DatabaseOut:
    return DatabaseOut.of(
        await service.load_database(session, access=access, database_id=database_id)
    )


@router.patch(
    "/v1/projects/{project_id}/databases/{database_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Change a database's labels or deletion protection",
    description="Labels are kept by Lariba only: with nothing else, the `update` operation "
    "is already `succeeded`. Deletion protection is applied at the provider.",
    responses=_CHANGE_PROBLEMS,
)
async def update_database(
    body: DatabaseUpdate,
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    database_id: DatabaseId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.update_database(
        session, jobs=jobs.app, access=access, database_id=database_id, body=body, ctx=ctx
    )
    accepted(response, operation)
    return operation


@router.delete(
    "/v1/projects/{project_id}/databases/{database_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Delete a database, optionally after a final snapshot",
    responses=_CHANGE_PROBLEMS,
)
async def delete_database(
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    database_id: DatabaseId,
    ctx: Context,
    response: Response,
    final_snapshot: Annotated[
        bool, Query(description="Take a snapshot first (listed under database-snapshots).")
    ] = False,
) -> OperationOut:
    operation = await service.delete_database(
        session,
        cloud=cloud,
        jobs=jobs.app,
        access=access,
        database_id=database_id,
        final_snapshot=final_snapshot,
        ctx=ctx,
    )
    accepted(response, operation)
    return operation


@router.post(
    "/v1/projects/{project_id}/databases/{database_id}/resize",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Change a database's size and/or storage",
    responses=_CHANGE_PROBLEMS,
)
async def resize_database(
    body: DatabaseResize,
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    database_id: DatabaseId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await service.resize(
        session,
        cloud=cloud,
        jobs=jobs.app,
        access=access,
        database_id=database_id,
        body=body,
        ctx=ctx,
    )
    accepted(response, operation)
    return operation


@router.post(
    "/v1/projects/{project_id}/databases/{database_id}/reset-password",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatabaseAccepted,
    summary="Give a database a new password",
    description="Needs the `admin` role. The old password works until the operation has "
    "succeeded. " + _ONCE,
    responses=_CHANGE_PROBLEMS,
    dependencies=[NoStore],
)
async def reset_password(
    access: ProjectAdmin,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    database_id: DatabaseId,
    ctx: Context,
    response: Response,
) -> DatabaseAccepted:
    answer = await service.reset_password(
        session, cloud=cloud, jobs=jobs.app, access=access, database_id=database_id, ctx=ctx
    )
    accepted(response, answer)
    return answer


@router.post(
    "/v1/projects/{project_id}/databases/{database_id}/credentials/reveal",
    response_model=Credentials,
    summary="Show a database's connection details with its password",
    description="Needs the `admin` role; audited (`database.credentials.reveal`). " + _ONCE,
    responses={**PROBLEMS, 403: {"description": "Role too low (`insufficient_role`)"}},
    dependencies=[NoStore],
)
async def reveal_credentials(
    access: ProjectAdmin,
    session: DbSession,
    cloud: Cloud,
    database_id: DatabaseId,
    ctx: Context,
) -> Credentials:
    return await service.reveal_credentials(
        session, cloud=cloud, access=access, database_id=database_id, ctx=ctx
    )


@router.get(
    "/v1/projects/{project_id}/databases/{database_id}/metrics",
    response_model=MetricsOut,
    summary="A database's size on disk and open connections, now",
    responses={**PROBLEMS, 503: {"description": "The provider did not answer"}},
)
async def database_metrics(
    access: ProjectViewer, session: DbSession, cloud: Cloud, database_id: DatabaseId
) -> MetricsOut:
    return await service.metrics(session, cloud=cloud, access=access, database_id=database_id)


@router.get(
    "/v1/projects/{project_id}/databases/{database_id}/operations",
    response_model=Page[OperationOut],
    summary="A database's operations, oldest first",
    responses=PROBLEMS,
)
async def database_operations(
    access: ProjectViewer, session: DbSession, database_id: DatabaseId, page: PageParams
) -> Page[OperationOut]:
    resource = await service.load_database(session, access=access, database_id=database_id)
    return await engine_service.list_operations(
        session, project_id=access.project.id, page=page, resource_id=resource.id
    )


@router.get(
    "/v1/projects/{project_id}/databases/{database_id}/events",
    response_model=Page[EventOut],
    summary="A database's events (status changes, drift), newest first",
    responses=PROBLEMS,
)
async def database_events(
    access: ProjectViewer, session: DbSession, database_id: DatabaseId, page: SequencePageParams
) -> Page[EventOut]:
    resource = await service.load_database(session, access=access, database_id=database_id)
    return await engine_service.list_events(
        session, project_id=access.project.id, page=page, resource_id=resource.id
    )


@router.post(
    "/v1/projects/{project_id}/databases/{database_id}/snapshots",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Take a snapshot of a database",
    description="Answers 202 with the snapshot's `create` operation; `resource.id` is the "
    "snapshot's id.",
    responses=_CHANGE_PROBLEMS,
)
async def create_snapshot(
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    database_id: DatabaseId,
    ctx: Context,
    response: Response,
    body: SnapshotCreate | None = None,
) -> OperationOut:
    operation = await snapshots.create_snapshot(
        session,
        cloud=cloud,
        jobs=jobs.app,
        access=access,
        database_id=database_id,
        name=body.name if body is not None else None,
        ctx=ctx,
    )
    accepted(response, operation)
    return operation


@router.get(
    "/v1/projects/{project_id}/databases/{database_id}/snapshots",
    response_model=Page[SnapshotOut],
    summary="A database's snapshots, oldest first",
    responses=PROBLEMS,
)
async def database_snapshots(
    access: ProjectViewer,
    session: DbSession,
    database_id: DatabaseId,
    page: PageParams,
    status: StatusFilter = None,
) -> Page[SnapshotOut]:
    resource = await service.load_database(session, access=access, database_id=database_id)
    return await snapshots.list_snapshots(
        session, access=access, page=page, statuses=status or [], database_id=resource.id
    )


@router.get(
    "/v1/projects/{project_id}/database-snapshots",
    response_model=Page[SnapshotOut],
    summary="The project's database snapshots (of deleted databases too), oldest first",
    responses=PROBLEMS,
)
async def list_snapshots(
    access: ProjectViewer, session: DbSession, page: PageParams, status: StatusFilter = None
) -> Page[SnapshotOut]:
    return await snapshots.list_snapshots(session, access=access, page=page, statuses=status or [])


@router.get(
    "/v1/projects/{project_id}/database-snapshots/{snapshot_id}",
    response_model=SnapshotOut,
    summary="Get a database snapshot",
    responses=PROBLEMS,
)
async def get_snapshot(
    access: ProjectViewer, session: DbSession, snapshot_id: SnapshotId
) -> SnapshotOut:
    return SnapshotOut.of(
        await snapshots.load_snapshot(session, access=access, snapshot_id=snapshot_id)
    )


@router.delete(
    "/v1/projects/{project_id}/database-snapshots/{snapshot_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationOut,
    summary="Delete a database snapshot",
    responses=_CHANGE_PROBLEMS,
)
async def delete_snapshot(
    access: ProjectMember,
    session: DbSession,
    jobs: Jobs,
    snapshot_id: SnapshotId,
    ctx: Context,
    response: Response,
) -> OperationOut:
    operation = await snapshots.delete_snapshot(
        session, jobs=jobs.app, access=access, snapshot_id=snapshot_id, ctx=ctx
    )
    accepted(response, operation)
    return operation


@router.post(
    "/v1/projects/{project_id}/database-snapshots/{snapshot_id}/restore",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatabaseAccepted,
    summary="Restore a snapshot into a new database",
    description="Answers 202 with the new database's `create` operation and its "
    "`credentials`. " + _ONCE,
    responses=_CHANGE_PROBLEMS,
    dependencies=[NoStore],
)
async def restore_snapshot(
    body: SnapshotRestore,
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    jobs: Jobs,
    snapshot_id: SnapshotId,
    ctx: Context,
    response: Response,
) -> DatabaseAccepted:
    answer = await snapshots.restore_snapshot(
        session,
        cloud=cloud,
        jobs=jobs.app,
        access=access,
        snapshot_id=snapshot_id,
        body=body,
        ctx=ctx,
    )
    accepted(response, answer)
    return answer
