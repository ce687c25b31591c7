"""Database use cases: every change is an operation the reconciler carries out. The
password is made in the request (``credentials``) and shown once. Snapshots' use cases
are in ``snapshots``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.databases.credentials import credentials_view, new_password, seal
from lariba.cloud.databases.errors import DatabasesNotOffered, InvalidState, ProviderUnavailable
from lariba.cloud.databases.models import DatabaseCredential
from lariba.cloud.databases.reconcile import (
    KIND,
    SNAPSHOT_KIND,
    envelope,
    password_purpose,
)
from lariba.cloud.databases.schemas import (
    Credentials,
    DatabaseAccepted,
    DatabaseCreate,
    DatabaseOut,
    DatabaseResize,
    DatabaseUpdate,
    MetricsOut,
)
from lariba.cloud.engine import quotas
from lariba.cloud.engine.models import (
    DesiredState,
    Operation,
    OperationType,
    Resource,
    ResourceStatus,
)
from lariba.cloud.engine.operations import (
    begin_operation,
    completed_operation,
    latest_operation,
    refuse_if_busy,
)
from lariba.cloud.engine.resources import (
    audit_change,
    create_resource,
    list_resources,
    load_resource,
    refuse_deleted,
    region_of,
)
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.cloud.engine.schemas import OperationOut
from lariba.core.errors import InvalidInput
from lariba.core.pagination import Page, PageRequest
from lariba.identity.audit import RequestContext
from lariba.identity.authz import ProjectAccess
from lariba.providers.base import ProviderError, TransientProviderError
from lariba.providers.catalog import DatabaseEngine, DatabaseSize
from lariba.providers.databases import DatabaseProvider


def database_provider(cloud: CloudRuntime) -> DatabaseProvider:
    if cloud.provider.database is None:
        raise DatabasesNotOffered(f"The {cloud.provider.name} provider offers no databases.")
    return cloud.provider.database


def database_size(cloud: CloudRuntime, name: str) -> DatabaseSize:
    size = cloud.catalog.database_size(name)
    if size is None:
        known = ", ".join(s.name for s in cloud.catalog.database_sizes)
        raise InvalidInput("size", f"unknown database size {name!r}; choose one of {known}")
    return size


def database_engine(cloud: CloudRuntime, version: str | None) -> DatabaseEngine:
    engines = cloud.catalog.database_engines
    engine = (
        cloud.catalog.database_engine(version) if version else (engines[-1] if engines else None)
    )
    if engine is None:
        known = ", ".join(e.version for e in engines)
        raise InvalidInput(
            "engine_version", f"unknown engine version {version!r}; choose one of {known}"
        )
    return engine


async def create_database_resource(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    ctx: RequestContext,
    name: str,
    region: str,
    spec: dict[str, object],
    storage_gb: int,
    labels: dict[str, str],
) -> DatabaseAccepted:
    database_provider(cloud)
    resource, operation = await create_resource(
        session,
        cloud=cloud,
        jobs=jobs,
        access=access,
        ctx=ctx,
        kind=KIND,
        name=name,
        region=region,
        spec={**spec, "storage_gb": storage_gb},
        usage={"databases": 1, "database_storage_gb": storage_gb},
        labels=labels,
        desired_state=DesiredState.available,
    )
    password = new_password()
    seal(session, cloud, resource, password)
    await session.flush()
    return DatabaseAccepted(
        **OperationOut.of(operation).model_dump(),
        credentials=credentials_view(database_provider(cloud), resource, password),
    )


async def create_database(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    body: DatabaseCreate,
    ctx: RequestContext,
) -> DatabaseAccepted:
    region = region_of(cloud, body.region)
    size = database_size(cloud, body.size)
    engine = database_engine(cloud, body.engine_version)
    return await create_database_resource(
        session,
        cloud=cloud,
        jobs=jobs,
        access=access,
        ctx=ctx,
        name=body.name,
        region=region,
        spec={
            "engine_version": engine.version,
            "size": size.name,
            "deletion_protection": body.deletion_protection,
        },
        storage_gb=body.storage_gb,
        labels=body.labels,
    )


async def load_database(
    session: AsyncSession, *, access: ProjectAccess, database_id: uuid.UUID, lock: bool = False
) -> Resource:
    return await load_resource(
        session, access=access, kind=KIND, resource_id=database_id, lock=lock
    )


async def list_databases(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    page: PageRequest,
    statuses: Sequence[str],
    labels: Sequence[str],
) -> Page[DatabaseOut]:
    resources, cursor = await list_resources(
        session, access=access, kind=KIND, page=page, statuses=statuses, labels=labels
    )
    return Page(items=[DatabaseOut.of(r) for r in resources], next_cursor=cursor)


def refuse_unless_live(resource: Resource, what: str) -> None:
    """A change needs a database that exists at the provider and is not being deleted."""
    refuse_deleted(resource)
    if resource.provider_id is None:
        raise InvalidState(
            f"Database {resource.id} does not exist at the provider yet; it cannot {what}.",
            extra={"resource_status": resource.status},
        )


async def update_database(
    session: AsyncSession,
    *,
    jobs: procrastinate.App,
    access: ProjectAccess,
    database_id: uuid.UUID,
    body: DatabaseUpdate,
    ctx: RequestContext,
) -> OperationOut:
    """Labels change within the request; a change of deletion protection is an ``update``
    operation the reconciler applies at the provider."""
    if body.labels is None and body.deletion_protection is None:
        raise InvalidInput("labels", "give labels, deletion_protection, or both")
    resource = await load_database(session, access=access, database_id=database_id, lock=True)
    refuse_deleted(resource)
    params: dict[str, object] = {}
    if body.labels is not None:
        resource.labels = body.labels
        params["labels"] = body.labels
    protect = body.deletion_protection
    if protect is not None and protect != bool(resource.spec.get("deletion_protection")):
        await refuse_if_busy(session, resource)
        params["deletion_protection"] = protect
        operation = await begin_operation(
            session,
            jobs=jobs,
            resource=resource,
            type=OperationType.update,
            actor=access.principal.actor,
            params=params,
        )
        resource.spec = {**resource.spec, "deletion_protection": protect}
    else:
        operation = await completed_operation(
            session,
            resource=resource,
            type=OperationType.update,
            actor=access.principal.actor,
            params=params,
        )
    await session.flush()
    await audit_change(
        session,
        ctx=ctx,
        access=access,
        action="database.update",
        resource=resource,
        details={k: v for k, v in params.items() if k == "deletion_protection"},
    )
    return OperationOut.of(operation)


async def resize(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    database_id: uuid.UUID,
    body: DatabaseResize,
    ctx: RequestContext,
) -> OperationOut:
    if body.size is None and body.storage_gb is None:
        raise InvalidInput("size", "give a new size, storage_gb, or both")
    size = database_size(cloud, body.size).name if body.size is not None else None
    resource = await load_database(session, access=access, database_id=database_id, lock=True)
    await refuse_if_busy(session, resource)
    refuse_unless_live(resource, "be resized")
    old_size, old_storage = resource.spec["size"], int(resource.spec["storage_gb"])
    new_size, new_storage = size or old_size, body.storage_gb or old_storage
    if new_storage < old_storage:
        raise InvalidInput(
            "storage_gb", f"storage can only grow: the database has {old_storage} GB"
        )
    if (new_size, new_storage) == (old_size, old_storage):
        raise InvalidState(
            f"Database {resource.id} already has size {old_size} and {old_storage} GB.",
            code="size_unchanged",
        )
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.resize,
        actor=access.principal.actor,
        status=ResourceStatus.modifying.value,
        params={
            "from_size": old_size,
            "to_size": new_size,
            "from_storage_gb": old_storage,
            "to_storage_gb": new_storage,
        },
    )
    if new_storage > old_storage:
        await quotas.reserve(
            session,
            settings=cloud.settings,
            project_id=resource.project_id,
            requested={"database_storage_gb": new_storage - old_storage},
        )
    resource.spec = {**resource.spec, "size": new_size, "storage_gb": new_storage}
    resource.usage = {**resource.usage, "database_storage_gb": new_storage}
    await audit_change(
        session,
        ctx=ctx,
        access=access,
        action="database.resize",
        resource=resource,
        details={"size": new_size, "storage_gb": new_storage},
    )
    return OperationOut.of(operation)


async def reset_password(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    database_id: uuid.UUID,
    ctx: RequestContext,
) -> DatabaseAccepted:
    """A new password, sealed now and applied by the reconciler: the old one works until
    the operation has succeeded."""
    resource = await load_database(session, access=access, database_id=database_id, lock=True)
    await refuse_if_busy(session, resource)
    refuse_unless_live(resource, "get a new password")
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.reset_password,
        actor=access.principal.actor,
    )
    password = new_password()
    credential = await session.get(DatabaseCredential, resource.id, with_for_update=True)
    sealed = envelope(cloud.settings).seal(password.encode(), purpose=password_purpose(resource.id))
    if credential is None:
        seal(session, cloud, resource, password)
    else:
        credential.store(sealed)
    await audit_change(
        session, ctx=ctx, access=access, action="database.reset_password", resource=resource
    )
    await session.flush()
    return DatabaseAccepted(
        **OperationOut.of(operation).model_dump(),
        credentials=credentials_view(database_provider(cloud), resource, password),
    )


async def reveal_credentials(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    access: ProjectAccess,
    database_id: uuid.UUID,
    ctx: RequestContext,
) -> Credentials:
    resource = await load_database(session, access=access, database_id=database_id)
    refuse_deleted(resource)
    credential = await session.get(DatabaseCredential, resource.id)
    if credential is None:
        raise InvalidState(f"Database {resource.id} has no stored password.")
    password = (
        envelope(cloud.settings)
        .open(credential.sealed, purpose=password_purpose(resource.id))
        .decode()
    )
    await audit_change(
        session, ctx=ctx, access=access, action="database.credentials.reveal", resource=resource
    )
    return credentials_view(database_provider(cloud), resource, password)


async def metrics(
    session: AsyncSession, *, cloud: CloudRuntime, access: ProjectAccess, database_id: uuid.UUID
) -> MetricsOut:
    """Asked of the provider now: the database's size and its open connections."""
    resource = await load_database(session, access=access, database_id=database_id)
    refuse_unless_live(resource, "report metrics")
    assert resource.provider_id is not None
    try:
        measured = await database_provider(cloud).metrics(
            region=resource.region, provider_id=resource.provider_id
        )
    except TransientProviderError as exc:
        raise ProviderUnavailable(
            f"The provider did not answer ({exc.code}); try again shortly.",
            headers={"Retry-After": "5"},
        ) from exc
    except ProviderError as exc:
        raise InvalidState(f"The provider refused: {exc.message} ({exc.code})") from exc
    return MetricsOut(
        database_id=resource.id, size_bytes=measured.size_bytes, connections=measured.connections
    )


async def delete_database(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    database_id: uuid.UUID,
    final_snapshot: bool,
    ctx: RequestContext,
) -> OperationOut:
    """Deletes the database, optionally after a final snapshot (a snapshot resource of its
    own, listed with the project's snapshots). An operation still running is superseded;
    deleting again answers the delete already under way, or retries a failed one."""
    resource = await load_database(session, access=access, database_id=database_id, lock=True)
    if resource.desired_state == DesiredState.deleted.value:
        previous = await latest_operation(session, resource, OperationType.delete)
        if previous is not None and (
            resource.status != ResourceStatus.error.value or previous.status != "failed"
        ):
            return OperationOut.of(previous)
    if resource.spec.get("deletion_protection"):
        raise InvalidState(
            f"Database {resource.id} has deletion protection; turn it off first.",
            code="deletion_protected",
        )
    spec = dict(resource.spec)
    if final_snapshot and not spec.get("final_snapshot_id"):
        if resource.provider_id is None:
            raise InvalidState(
                f"Database {resource.id} does not exist at the provider: there is nothing "
                "to snapshot.",
                extra={"resource_status": resource.status},
            )
        snapshot, _operation = await new_snapshot(
            session,
            cloud=cloud,
            jobs=jobs,
            access=access,
            ctx=ctx,
            database=resource,
            name=None,
            final=True,
        )
        spec["final_snapshot_id"] = str(snapshot.id)
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.delete,
        actor=access.principal.actor,
        status=ResourceStatus.deleting.value,
        supersede=True,
        params={"final_snapshot_id": spec.get("final_snapshot_id")}
        if spec.get("final_snapshot_id")
        else None,
    )
    resource.spec = spec
    resource.desired_state = DesiredState.deleted.value
    await audit_change(session, ctx=ctx, access=access, action="database.delete", resource=resource)
    return OperationOut.of(operation)


def _snapshot_name(database: Resource) -> str:
    return f"{database.name[:40]}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


async def new_snapshot(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    ctx: RequestContext,
    database: Resource,
    name: str | None,
    final: bool,
) -> tuple[Resource, Operation]:
    assert database.provider_id is not None
    return await create_resource(
        session,
        cloud=cloud,
        jobs=jobs,
        access=access,
        ctx=ctx,
        kind=SNAPSHOT_KIND,
        name=name or (f"{_snapshot_name(database)}-final" if final else _snapshot_name(database)),
        region=database.region,
        spec={
            "database_id": str(database.id),
            "database_name": database.name,
            "database_provider_id": database.provider_id,
            "engine_version": database.spec["engine_version"],
            "size": database.spec["size"],
            "storage_gb": int(database.spec["storage_gb"]),
            "final": final,
        },
        usage={},
        labels={},
        desired_state=DesiredState.available,
    )
