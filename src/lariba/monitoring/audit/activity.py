"""A project's activity feed: its audit events merged with its resources' status
changes, newest first, each told in one line."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource, ResourceEvent
from lariba.cloud.engine.schemas import Actor
from lariba.core.pagination import Page
from lariba.identity.models import AuditEvent
from lariba.monitoring.audit.schemas import ActivityItemOut, ActivityTarget
from lariba.monitoring.audit.timeline import (
    Source,
    TimelinePageRequest,
    bigint_key,
    fetch_timeline_page,
)

# How an action's last word reads in a sentence ("alice@example.com created instance web-1").
_VERBS = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "start": "started",
    "stop": "stopped",
    "reboot": "rebooted",
    "resize": "resized",
    "reset_password": "reset the password of",
    "reveal": "revealed the credentials of",
    "versioning": "changed versioning of",
    "accept": "accepted",
    "revoke": "revoked",
    "role_change": "changed the role of",
    "leave": "left",
    "transfer_ownership": "transferred the ownership of",
}

# Object actions (``object.*``) are audited on their bucket; they read by their key.
_OBJECT_VERBS = {
    "delete": "deleted",
    "copy": "copied an object to",
    "upload_begin": "began uploading",
    "upload_complete": "uploaded",
    "upload_abort": "aborted the upload of",
}

LARIBA = Actor(type="system", id=None, label="lariba")


def _target_name(event: AuditEvent) -> str | None:
    # Changes to named things (resources, projects) carry the name in their details.
    name = event.details.get("name")
    return name if isinstance(name, str) else None


def audit_summary(event: AuditEvent) -> str:
    """``alice@example.com created instance web-1``; an unknown action reads
    ``alice@example.com: quota.update on project 8f1c...``."""
    who = event.actor_label or event.actor_type
    target = " ".join(
        part for part in (event.target_type, _target_name(event) or event.target_id) if part
    )
    family, _, last = event.action.rpartition(".")
    key = event.details.get("key")
    verb = _VERBS.get(last)
    if family == "object" and isinstance(key, str):
        if last == "presign":
            reading = event.details.get("method") == "GET"
            object_verb = "got a download link for" if reading else "got an upload link for"
        else:
            object_verb = _OBJECT_VERBS.get(last, event.action)
        line = f"{who} {object_verb} {key} in {target}"
    elif verb is None:
        line = f"{who}: {event.action}" + (f" on {target}" if target else "")
    else:
        line = f"{who} {verb} {target}".rstrip()
    return line if event.outcome == "success" else f"{line} ({event.outcome})"


def event_summary(event: ResourceEvent, name: str) -> str:
    """``instance web-1: running → stopped``, with the reason when there is one."""
    change = f"{event.from_status} → {event.to_status}" if event.from_status else event.to_status
    line = f"{event.resource_kind} {name}: {change}"
    if event.type == "drift":
        line = f"{event.resource_kind} {name} changed outside Lariba: {change}"
    return f"{line} ({event.reason})" if event.reason else line


async def list_activity(
    session: AsyncSession, *, project_id: uuid.UUID, page: TimelinePageRequest
) -> Page[ActivityItemOut]:
    sources = [
        Source(
            name="audit",
            where=[AuditEvent.project_id == project_id],
            at=AuditEvent.occurred_at,
            ident=AuditEvent.id,
            key=bigint_key(AuditEvent.id),
            parse_key=int,
        ),
        Source(
            name="resource",
            where=[ResourceEvent.project_id == project_id],
            at=ResourceEvent.occurred_at,
            ident=ResourceEvent.id,
            key=bigint_key(ResourceEvent.id),
            parse_key=int,
        ),
    ]
    keys, next_cursor = await fetch_timeline_page(session, sources, page=page, newest_first=True)
    wanted: dict[str, list[int]] = {"audit": [], "resource": []}
    for key in keys:
        wanted[key.source].append(int(key.key))
    found: dict[tuple[str, int], ActivityItemOut] = {}
    if wanted["audit"]:
        for event in await session.scalars(
            select(AuditEvent).where(AuditEvent.id.in_(wanted["audit"]))
        ):
            found["audit", event.id] = _audit_item(event)
    if wanted["resource"]:
        rows = await session.execute(
            select(ResourceEvent, Resource.name)
            .join(Resource, Resource.id == ResourceEvent.resource_id)
            .where(ResourceEvent.id.in_(wanted["resource"]))
        )
        for change, name in rows:
            found["resource", change.id] = _resource_item(change, name)
    return Page(items=[found[key.source, int(key.key)] for key in keys], next_cursor=next_cursor)


def _audit_item(event: AuditEvent) -> ActivityItemOut:
    target = None
    if event.target_type or event.target_id:
        target = ActivityTarget(
            type=event.target_type, id=event.target_id, name=_target_name(event)
        )
    return ActivityItemOut(
        at=event.occurred_at,
        source="audit",
        id=event.id,
        type=event.action,
        summary=audit_summary(event),
        actor=Actor(type=event.actor_type, id=event.actor_id, label=event.actor_label),
        target=target,
        outcome=event.outcome,
    )


def _resource_item(event: ResourceEvent, name: str) -> ActivityItemOut:
    return ActivityItemOut(
        at=event.occurred_at,
        source="resource",
        id=event.id,
        type=event.type,
        summary=event_summary(event, name),
        actor=LARIBA,
        target=ActivityTarget(type=event.resource_kind, id=str(event.resource_id), name=name),
        outcome="success",
    )
