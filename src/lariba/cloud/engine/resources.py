"""What every resource kind's service does the same way: create the row (a unique name,
the quota, the first event and the create operation, in one transaction), load one
scoped to its project, filter lists, and audit changes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import procrastinate
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine import quotas
from lariba.cloud.engine.errors import InvalidState
from lariba.cloud.engine.models import (
    DesiredState,
    Operation,
    OperationType,
    Resource,
    ResourceStatus,
)
from lariba.cloud.engine.operations import begin_operation, completed_operation, record_event
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.errors import Conflict, InvalidInput, NotFound
from lariba.core.pagination import PageRequest, fetch_page
from lariba.identity import audit
from lariba.identity.audit import RequestContext
from lariba.identity.authz import ProjectAccess


def region_of(cloud: CloudRuntime, requested: str | None) -> str:
    """The requested catalog region (422 naming ``region`` when unknown), or the first."""
    catalog = cloud.catalog
    region = requested or catalog.regions[0].name
    if catalog.region(region) is None:
        known = ", ".join(r.name for r in catalog.regions)
        raise InvalidInput("region", f"unknown region {region!r}; choose one of {known}")
    return region


def _name_taken(kind: str, name: str) -> Conflict:
    return Conflict(
        f"The project already has a {kind} named {name!r}; choose another name.",
        code="name_taken",
        extra={"errors": [{"field": "name", "message": "already taken", "location": "body"}]},
    )


async def create_resource(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    ctx: RequestContext,
    kind: str,
    name: str,
    region: str,
    spec: dict[str, Any],
    usage: dict[str, int],
    labels: dict[str, str],
    desired_state: DesiredState = DesiredState.running,
) -> tuple[Resource, Operation]:
    """Adds a resource and its ``create`` operation: 409 ``name_taken`` when the project
    has a live one of that kind and name, what ``cloud.admission_checks`` refuse, or 403
    ``quota_exceeded`` when ``usage`` does not fit. Nothing reaches the provider until the
    reconciler picks the operation up, and a refusal rolls everything back.

    The quota comes last: its check locks the project until the request commits, and
    creates in one project queue on that lock, so it is held for as little as can be."""
    project_id = access.project.id
    taken = await session.scalar(
        select(Resource.id).where(
            Resource.project_id == project_id,
            Resource.kind == kind,
            Resource.name == name,
            Resource.status != ResourceStatus.deleted.value,
        )
    )
    if taken is not None:
        raise _name_taken(kind, name)
    for check in cloud.admission_checks:
        await check(session, cloud, project_id, kind)
    resource = Resource(
        id=uuid.uuid4(),
        project_id=project_id,
        kind=kind,
        name=name,
        region=region,
        provider=cloud.provider.name,
        spec=spec,
        desired_state=desired_state.value,
        status=ResourceStatus.pending.value,
        usage=usage,
        labels=labels,
        generation=1,
        observed_generation=0,
    )
    session.add(resource)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent create took the name first; the request fails
        raise _name_taken(kind, name) from None
    record_event(session, resource, from_status=None, to_status=resource.status, reason="created")
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.create,
        actor=access.principal.actor,
    )
    await audit_change(session, ctx=ctx, access=access, action=f"{kind}.create", resource=resource)
    await quotas.reserve(
        session,
        settings=cloud.settings,
        project_id=project_id,
        requested=usage,
        adding=resource.id,
    )
    return resource, operation


async def load_resource(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    kind: str,
    resource_id: uuid.UUID,
    lock: bool = False,
) -> Resource:
    """The project's resource of that kind; 404 ``<kind>_not_found`` otherwise (another
    project's resource included)."""
    stmt = select(Resource).where(
        Resource.id == resource_id,
        Resource.project_id == access.project.id,
        Resource.kind == kind,
    )
    if lock:
        stmt = stmt.with_for_update()
    resource = await session.scalar(stmt)
    if resource is None:
        raise NotFound(f"{kind.capitalize()} {resource_id} not found.", code=f"{kind}_not_found")
    return resource


def listed(
    access: ProjectAccess, *, kind: str, statuses: Sequence[str], labels: Sequence[str]
) -> Select[Resource]:
    """The project's resources of ``kind``: in ``statuses`` (default: all but deleted),
    carrying every ``key=value`` / ``key`` label selector."""
    stmt = select(Resource).where(Resource.project_id == access.project.id, Resource.kind == kind)
    if statuses:
        stmt = stmt.where(Resource.status.in_(statuses))
    else:
        stmt = stmt.where(Resource.status != ResourceStatus.deleted.value)
    for selector in labels:
        key, has_value, value = selector.partition("=")
        if has_value:
            stmt = stmt.where(Resource.labels.contains({key: value}))
        else:
            stmt = stmt.where(Resource.labels.has_key(key))
    return stmt


async def audit_change(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    access: ProjectAccess,
    action: str,
    resource: Resource,
    details: dict[str, object] | None = None,
) -> None:
    await audit.record(
        session,
        ctx=ctx,
        actor=access.principal.actor,
        action=action,
        target_type=resource.kind,
        target_id=resource.id,
        project_id=resource.project_id,
        details={"name": resource.name, **(details or {})},
    )


def refuse_deleted(resource: Resource) -> None:
    """409 ``invalid_state`` for a resource being deleted or deleted."""
    if resource.desired_state == DesiredState.deleted.value:
        raise InvalidState(
            f"{resource.kind.capitalize()} {resource.id} is being deleted or is deleted "
            f"({resource.status}).",
            extra={"resource_status": resource.status},
        )


async def relabel(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    resource: Resource,
    labels: dict[str, str],
    ctx: RequestContext,
) -> Operation:
    """Replaces the labels of a resource (locked by the caller). Labels live in Lariba
    only, so the ``update`` operation is done when the request is."""
    refuse_deleted(resource)
    resource.labels = labels
    operation = await completed_operation(
        session,
        resource=resource,
        type=OperationType.update,
        actor=access.principal.actor,
        params={"labels": labels},
    )
    await session.flush()
    await audit_change(
        session, ctx=ctx, access=access, action=f"{resource.kind}.update", resource=resource
    )
    return operation


async def list_resources(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    kind: str,
    page: PageRequest,
    statuses: Sequence[str],
    labels: Sequence[str],
) -> tuple[list[Resource], str | None]:
    """One page of the project's resources of ``kind`` (see ``listed``) and the cursor
    of the next."""
    rows, cursor = await fetch_page(
        session,
        listed(access, kind=kind, statuses=statuses, labels=labels),
        page=page,
        created_at=Resource.created_at,
        ident=Resource.id,
    )
    return [row.Resource for row in rows], cursor
