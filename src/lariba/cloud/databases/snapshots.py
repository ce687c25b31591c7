"""Database snapshot use cases: take, list, get, delete, and restore into a new database.
The snapshot resource itself is made by ``service.new_snapshot``, which a delete uses for
its final snapshot too."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.databases.errors import InvalidState
from lariba.cloud.databases.reconcile import SNAPSHOT_KIND
from lariba.cloud.databases.schemas import DatabaseAccepted, SnapshotOut, SnapshotRestore
from lariba.cloud.databases.service import (
    create_database_resource,
    database_size,
    load_database,
    new_snapshot,
    refuse_unless_live,
)
from lariba.cloud.engine.models import DesiredState, OperationType, Resource, ResourceStatus
from lariba.cloud.engine.operations import begin_operation, latest_operation
from lariba.cloud.engine.resources import audit_change, listed, load_resource
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.cloud.engine.schemas import OperationOut
from lariba.core.errors import InvalidInput
from lariba.core.pagination import Page, PageRequest, fetch_page
from lariba.identity.audit import RequestContext
from lariba.identity.authz import ProjectAccess


async def create_snapshot(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    database_id: uuid.UUID,
    name: str | None,
    ctx: RequestContext,
) -> OperationOut:
    database = await load_database(session, access=access, database_id=database_id, lock=True)
    refuse_unless_live(database, "be snapshotted")
    _snapshot, operation = await new_snapshot(
        session,
        cloud=cloud,
        jobs=jobs,
        access=access,
        ctx=ctx,
        database=database,
        name=name,
        final=False,
    )
    return OperationOut.of(operation)


async def load_snapshot(
    session: AsyncSession, *, access: ProjectAccess, snapshot_id: uuid.UUID, lock: bool = False
) -> Resource:
    return await load_resource(
        session, access=access, kind=SNAPSHOT_KIND, resource_id=snapshot_id, lock=lock
    )


async def list_snapshots(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    page: PageRequest,
    statuses: Sequence[str],
    database_id: uuid.UUID | None = None,
) -> Page[SnapshotOut]:
    stmt = listed(access, kind=SNAPSHOT_KIND, statuses=statuses, labels=())
    if database_id is not None:
        stmt = stmt.where(Resource.spec["database_id"].astext == str(database_id))
    rows, cursor = await fetch_page(
        session, stmt, page=page, created_at=Resource.created_at, ident=Resource.id
    )
    return Page(items=[SnapshotOut.of(row.Resource) for row in rows], next_cursor=cursor)


async def delete_snapshot(
    session: AsyncSession,
    *,
    jobs: procrastinate.App,
    access: ProjectAccess,
    snapshot_id: uuid.UUID,
    ctx: RequestContext,
) -> OperationOut:
    snapshot = await load_snapshot(session, access=access, snapshot_id=snapshot_id, lock=True)
    if snapshot.desired_state == DesiredState.deleted.value:
        previous = await latest_operation(session, snapshot, OperationType.delete)
        if previous is not None and (
            snapshot.status != ResourceStatus.error.value or previous.status != "failed"
        ):
            return OperationOut.of(previous)
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=snapshot,
        type=OperationType.delete,
        actor=access.principal.actor,
        status=ResourceStatus.deleting.value,
        supersede=True,
    )
    snapshot.desired_state = DesiredState.deleted.value
    await audit_change(
        session, ctx=ctx, access=access, action="database_snapshot.delete", resource=snapshot
    )
    return OperationOut.of(operation)


async def restore_snapshot(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    snapshot_id: uuid.UUID,
    body: SnapshotRestore,
    ctx: RequestContext,
) -> DatabaseAccepted:
    """A new database resource with the snapshot's data; the snapshot is unchanged."""
    snapshot = await load_snapshot(session, access=access, snapshot_id=snapshot_id)
    if snapshot.status != ResourceStatus.available.value or snapshot.provider_id is None:
        raise InvalidState(
            f"Snapshot {snapshot.id} is {snapshot.status}; only an available snapshot can be "
            "restored.",
            extra={"resource_status": snapshot.status},
        )
    source_storage = int(snapshot.spec["storage_gb"])
    storage_gb = body.storage_gb or source_storage
    if storage_gb < source_storage:
        raise InvalidInput(
            "storage_gb", f"the snapshot's database had {source_storage} GB; give at least that"
        )
    size = database_size(cloud, body.size or snapshot.spec["size"])
    return await create_database_resource(
        session,
        cloud=cloud,
        jobs=jobs,
        access=access,
        ctx=ctx,
        name=body.name,
        region=snapshot.region,
        spec={
            "engine_version": snapshot.spec["engine_version"],
            "size": size.name,
            "deletion_protection": body.deletion_protection,
            "restore_from": {"snapshot_id": str(snapshot.id), "provider_id": snapshot.provider_id},
        },
        storage_gb=storage_gb,
        labels=body.labels,
    )
