"""A resource's log: its operations and its events, merged in time order."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Operation, Resource, ResourceEvent
from lariba.cloud.engine.schemas import EventOut, OperationOut
from lariba.core.errors import NotFound
from lariba.core.pagination import Page
from lariba.monitoring.audit.schemas import LogEntryOut
from lariba.monitoring.audit.timeline import (
    Source,
    TimelinePageRequest,
    bigint_key,
    fetch_timeline_page,
    uuid_key,
)


def operation_summary(operation: Operation) -> str:
    """``stop by alice@example.com: succeeded``, with the error or progress when set."""
    who = operation.created_by_label or operation.created_by_type
    line = f"{operation.type} by {who}: {operation.status}"
    if operation.error:
        return f"{line} ({operation.error.get('message') or operation.error.get('code')})"
    if operation.progress and operation.status in ("pending", "running"):
        return f"{line} ({operation.progress})"
    return line


def log_event_summary(event: ResourceEvent) -> str:
    change = f"{event.from_status} → {event.to_status}" if event.from_status else event.to_status
    line = f"drift: {change}" if event.type == "drift" else change
    return f"{line} ({event.reason})" if event.reason else line


async def resource_log(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    resource_id: uuid.UUID,
    page: TimelinePageRequest,
) -> Page[LogEntryOut]:
    """The resource's operations (at the time they were asked for) and events, oldest
    first; 404 ``resource_not_found`` unless it is the project's (of any kind, deleted
    ones included: their log stays readable)."""
    found = await session.scalar(
        select(Resource.id).where(Resource.id == resource_id, Resource.project_id == project_id)
    )
    if found is None:
        raise NotFound(f"Resource {resource_id} not found.", code="resource_not_found")
    sources = [
        Source(
            name="event",
            where=[ResourceEvent.resource_id == resource_id],
            at=ResourceEvent.occurred_at,
            ident=ResourceEvent.id,
            key=bigint_key(ResourceEvent.id),
            parse_key=int,
        ),
        Source(
            name="operation",
            where=[Operation.resource_id == resource_id],
            at=Operation.created_at,
            ident=Operation.id,
            key=uuid_key(Operation.id),
            parse_key=uuid.UUID,
        ),
    ]
    keys, next_cursor = await fetch_timeline_page(session, sources, page=page, newest_first=False)
    event_ids = [int(k.key) for k in keys if k.source == "event"]
    operation_ids = [uuid.UUID(k.key) for k in keys if k.source == "operation"]
    entries: dict[int | uuid.UUID, LogEntryOut] = {}
    if event_ids:
        for event in await session.scalars(
            select(ResourceEvent).where(ResourceEvent.id.in_(event_ids))
        ):
            entries[event.id] = LogEntryOut(
                at=event.occurred_at,
                source="event",
                summary=log_event_summary(event),
                operation=None,
                event=EventOut.of(event),
            )
    if operation_ids:
        for operation in await session.scalars(
            select(Operation).where(Operation.id.in_(operation_ids))
        ):
            entries[operation.id] = LogEntryOut(
                at=operation.created_at,
                source="operation",
                summary=operation_summary(operation),
                operation=OperationOut.of(operation),
                event=None,
            )
    return Page(
        items=[entries[int(k.key) if k.source == "event" else uuid.UUID(k.key)] for k in keys],
        next_cursor=next_cursor,
    )
