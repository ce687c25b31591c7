"""Reading operations, events and quotas of a project (tenant-scoped by the caller's
ProjectAccess)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Operation, ResourceEvent
from lariba.cloud.engine.schemas import EventOut, OperationOut
from lariba.core.errors import NotFound
from lariba.core.pagination import (
    Page,
    PageRequest,
    SequencePageRequest,
    fetch_page,
    fetch_page_newest_first,
)


async def list_operations(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    page: PageRequest,
    resource_id: uuid.UUID | None = None,
    status: str | None = None,
) -> Page[OperationOut]:
    stmt = select(Operation).where(Operation.project_id == project_id)
    if resource_id is not None:
        stmt = stmt.where(Operation.resource_id == resource_id)
    if status is not None:
        stmt = stmt.where(Operation.status == status)
    rows, cursor = await fetch_page(
        session, stmt, page=page, created_at=Operation.created_at, ident=Operation.id
    )
    return Page(items=[OperationOut.of(row.Operation) for row in rows], next_cursor=cursor)


async def get_operation(
    session: AsyncSession, *, project_id: uuid.UUID, operation_id: uuid.UUID
) -> OperationOut:
    operation = await session.scalar(
        select(Operation).where(Operation.id == operation_id, Operation.project_id == project_id)
    )
    if operation is None:
        raise NotFound(f"Operation {operation_id} not found.", code="operation_not_found")
    return OperationOut.of(operation)


async def list_events(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    page: SequencePageRequest,
    resource_id: uuid.UUID | None = None,
) -> Page[EventOut]:
    stmt = select(ResourceEvent).where(ResourceEvent.project_id == project_id)
    if resource_id is not None:
        stmt = stmt.where(ResourceEvent.resource_id == resource_id)
    rows, cursor = await fetch_page_newest_first(session, stmt, page=page, ident=ResourceEvent.id)
    return Page(items=[EventOut.of(row.ResourceEvent) for row in rows], next_cursor=cursor)
