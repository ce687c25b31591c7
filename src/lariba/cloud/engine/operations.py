"""The request side of the engine: operations begin in the request's transaction, which
also records the status change, its event and the reconcile job, so either all of it
happens or none of it does."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import procrastinate
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import (
    ACTIVE_OPERATION,
    Operation,
    OperationStatus,
    OperationType,
    Resource,
    ResourceEvent,
)
from lariba.core.errors import Conflict
from lariba.core.jobs import defer_in_transaction
from lariba.identity.audit import Actor

RECONCILE_TASK = "reconcile_resource"


class OperationInProgress(Conflict):
    def __init__(self, active: Operation) -> None:
        super().__init__(
            f"The {active.resource_kind} is busy with operation {active.id} "
            f"({active.type}, {active.status}); wait for it to finish, then try again.",
            code="operation_in_progress",
            extra={
                "operation_id": str(active.id),
                "operation_type": active.type,
                "operation_status": active.status,
            },
        )


def reconcile_locks(resource_id: uuid.UUID) -> dict[str, str]:
    """``lock``: no two workers work one resource at once. ``queueing_lock``: at most
    one reconcile of it waits in the queue (a pass always reads the latest state)."""
    return {"lock": f"resource:{resource_id}", "queueing_lock": f"reconcile:{resource_id}"}


async def enqueue_reconcile(
    session: AsyncSession,
    jobs: procrastinate.App,
    resource_id: uuid.UUID,
    *,
    bring_forward: bool = True,
    first: bool = False,
) -> None:
    """Queues a pass over the resource, in the caller's transaction. ``bring_forward``:
    a pass already waiting (say, backing off) runs now instead (a user is waiting)."""
    await defer_in_transaction(
        jobs,
        session,
        RECONCILE_TASK,
        **reconcile_locks(resource_id),
        bring_forward=bring_forward,
        first=first,
        resource_id=str(resource_id),
    )


def record_event(
    session: AsyncSession,
    resource: Resource,
    *,
    to_status: str,
    from_status: str | None,
    reason: str | None = None,
    operation_id: uuid.UUID | None = None,
    type: str = "status_changed",
) -> None:
    session.add(
        ResourceEvent(
            project_id=resource.project_id,
            resource_id=resource.id,
            resource_kind=resource.kind,
            operation_id=operation_id,
            type=type,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
    )


def set_status(
    session: AsyncSession,
    resource: Resource,
    status: str,
    *,
    reason: str | None = None,
    operation_id: uuid.UUID | None = None,
) -> None:
    """Changes the resource's status, with its event; no-op when nothing changes."""
    if resource.status == status and resource.status_reason == reason:
        return
    record_event(
        session,
        resource,
        from_status=resource.status,
        to_status=status,
        reason=reason,
        operation_id=operation_id,
    )
    resource.status = status
    resource.status_reason = reason


async def active_operation(session: AsyncSession, resource_id: uuid.UUID) -> Operation | None:
    result = await session.execute(
        select(Operation).where(
            Operation.resource_id == resource_id, Operation.status.in_(ACTIVE_OPERATION)
        )
    )
    return result.scalar_one_or_none()


async def latest_operation(
    session: AsyncSession, resource: Resource, type: OperationType
) -> Operation | None:
    result = await session.execute(
        select(Operation)
        .where(Operation.resource_id == resource.id, Operation.type == type.value)
        .order_by(Operation.created_at.desc(), Operation.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def refuse_if_busy(session: AsyncSession, resource: Resource) -> None:
    """409 naming the running operation: checked before the request's own rules, so a
    busy resource always answers the same way."""
    active = await active_operation(session, resource.id)
    if active is not None:
        raise OperationInProgress(active)


async def database_now(session: AsyncSession) -> datetime:
    """PostgreSQL's ``now()``: the transaction's start, the time every row it writes
    with a ``now()`` default gets, so operations and events share one clock."""
    now = await session.scalar(select(func.now()))
    assert isinstance(now, datetime)
    return now


def _new_operation(
    resource: Resource,
    *,
    type: OperationType,
    status: OperationStatus,
    actor: Actor,
    params: dict[str, Any] | None,
    now: datetime,
) -> Operation:
    finished = status in (OperationStatus.succeeded, OperationStatus.failed)
    return Operation(
        id=uuid.uuid4(),
        project_id=resource.project_id,
        resource_id=resource.id,
        resource_kind=resource.kind,
        type=type.value,
        status=status.value,
        params=params or {},
        target_generation=resource.generation,
        created_by_type=actor.type,
        created_by_id=actor.id,
        created_by_label=actor.label,
        created_at=now,
        updated_at=now,
        started_at=now if finished else None,
        finished_at=now if finished else None,
    )


async def begin_operation(
    session: AsyncSession,
    *,
    jobs: procrastinate.App,
    resource: Resource,
    type: OperationType,
    actor: Actor,
    status: str | None = None,
    params: dict[str, Any] | None = None,
    supersede: bool = False,
) -> Operation:
    """Starts ``type`` on ``resource`` (locked by the caller): bumps its generation,
    sets its immediate ``status``, and queues its reconcile. A running operation makes
    this a 409, unless ``supersede`` (delete), which fails the running one instead."""
    now = await database_now(session)
    # A resource being created has no operation yet.
    active = None if type is OperationType.create else await active_operation(session, resource.id)
    if active is not None:
        if not supersede:
            raise OperationInProgress(active)
        active.status = OperationStatus.failed.value
        active.error = {
            "code": "superseded",
            "message": f"Superseded by a {type.value} operation before it finished.",
        }
        active.finished_at = now
        await session.flush()
    if type is not OperationType.create:
        resource.generation += 1
    operation = _new_operation(
        resource, type=type, status=OperationStatus.pending, actor=actor, params=params, now=now
    )
    session.add(operation)
    await session.flush()
    if status is not None:
        set_status(session, resource, status, operation_id=operation.id)
    await enqueue_reconcile(session, jobs, resource.id, first=type is OperationType.create)
    return operation


async def completed_operation(
    session: AsyncSession,
    *,
    resource: Resource,
    type: OperationType,
    actor: Actor,
    params: dict[str, Any] | None = None,
) -> Operation:
    """An operation done within the request (a change only Lariba keeps, like labels)."""
    operation = _new_operation(
        resource,
        type=type,
        status=OperationStatus.succeeded,
        actor=actor,
        params=params,
        now=await database_now(session),
    )
    session.add(operation)
    return operation
