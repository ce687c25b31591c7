"""The append-only audit trail of auth events: who did what to which target, and how it went."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.identity.models import AuditEvent

Outcome = Literal["success", "failure", "denied"]
ActorType = Literal["user", "api_key", "system", "anonymous"]


@dataclass(frozen=True)
class RequestContext:
    """Where a request came from, for audit rows and sessions."""

    client_ip: str | None
    request_id: str | None
    user_agent: str | None


async def request_context(request: Request) -> RequestContext:
    host = request.client.host if request.client else None
    try:
        client_ip = str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        client_ip = None
    agent = request.headers.get("user-agent")
    return RequestContext(
        client_ip=client_ip,
        request_id=getattr(request.state, "request_id", None),
        user_agent=agent[:512] if agent else None,
    )


Context = Annotated[RequestContext, Depends(request_context)]


@dataclass(frozen=True)
class Actor:
    type: ActorType
    id: uuid.UUID | None = None
    label: str | None = None


ANONYMOUS = Actor(type="anonymous")
SYSTEM = Actor(type="system", label="lariba")


def _event(
    *,
    ctx: RequestContext | None,
    actor: Actor,
    action: str,
    outcome: Outcome,
    target_type: str | None,
    target_id: object | None,
    project_id: uuid.UUID | None,
    details: dict[str, Any] | None,
) -> AuditEvent:
    return AuditEvent(
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        outcome=outcome,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        project_id=project_id,
        client_ip=ctx.client_ip if ctx else None,
        request_id=ctx.request_id if ctx else None,
        details=details or {},
    )


async def record(
    session: AsyncSession,
    *,
    ctx: RequestContext | None,
    actor: Actor,
    action: str,
    outcome: Outcome = "success",
    target_type: str | None = None,
    target_id: object | None = None,
    project_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Adds an audit row to the caller's transaction: it lands only if the change does."""
    session.add(
        _event(
            ctx=ctx,
            actor=actor,
            action=action,
            outcome=outcome,
            target_type=target_type,
            target_id=target_id,
            project_id=project_id,
            details=details,
        )
    )


async def record_now(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    ctx: RequestContext | None,
    actor: Actor,
    action: str,
    outcome: Outcome,
    target_type: str | None = None,
    target_id: object | None = None,
    project_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Writes an audit row in its own transaction, for events whose request fails and
    rolls back (a failed login, a reused refresh token) but must stay on record."""
    async with sessionmaker.begin() as session:
        session.add(
            _event(
                ctx=ctx,
                actor=actor,
                action=action,
                outcome=outcome,
                target_type=target_type,
                target_id=target_id,
                project_id=project_id,
                details=details,
            )
        )


@dataclass(frozen=True)
class AuditFilter:
    """A search of the audit trail; every field set narrows it. ``action`` ending in a
    dot (``instance.``) is a prefix, any other value an exact action."""

    actor_id: uuid.UUID | None = None
    actor_label: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    project_id: uuid.UUID | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def select_audit_events(where: AuditFilter) -> Select[AuditEvent]:
    """The audit rows matching ``where``, unordered: every search and export of the trail
    (platform admins', projects') starts here, so they filter alike."""
    stmt = select(AuditEvent)
    if where.actor_id is not None:
        stmt = stmt.where(AuditEvent.actor_id == where.actor_id)
    if where.actor_label is not None:
        # Labels are e-mails: compared as people type them, whatever the case.
        stmt = stmt.where(func.lower(AuditEvent.actor_label) == where.actor_label.lower())
    if where.action is not None:
        if where.action.endswith("."):
            stmt = stmt.where(AuditEvent.action.startswith(where.action, autoescape=True))
        else:
            stmt = stmt.where(AuditEvent.action == where.action)
    if where.target_type is not None:
        stmt = stmt.where(AuditEvent.target_type == where.target_type)
    if where.target_id is not None:
        stmt = stmt.where(AuditEvent.target_id == where.target_id)
    if where.project_id is not None:
        stmt = stmt.where(AuditEvent.project_id == where.project_id)
    if where.outcome is not None:
        stmt = stmt.where(AuditEvent.outcome == where.outcome)
    if where.since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < where.until)
    return stmt
