"""Response bodies of the audit log, activity feed, resource logs and server errors."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lariba.cloud.engine.schemas import Actor, EventOut, OperationOut


class ActivityTarget(BaseModel):
    type: str | None = Field(description="instance, bucket, database, project, member, ...")
    id: str | None
    name: str | None = Field(description="Its name when it has one (a resource's, a project's).")


class ActivityItemOut(BaseModel):
    """One thing that happened in the project: a change someone made (from the audit log)
    or a resource's status change (from its events)."""

    at: datetime
    source: Literal["audit", "resource"] = Field(
        description="audit: someone's action; resource: a status change Lariba observed."
    )
    id: int = Field(description="The audit event's id, or the resource event's id.")
    type: str = Field(
        description="The audit action (instance.create, member.role_change, ...), or the "
        "resource event type (status_changed, drift)."
    )
    summary: str = Field(description="One line for people: who did what to which.")
    actor: Actor
    target: ActivityTarget | None
    outcome: str = Field(description="success, failure or denied (status changes: success).")


class LogEntryOut(BaseModel):
    """One line of a resource's log: an operation (when it was asked for) or an event."""

    at: datetime
    source: Literal["operation", "event"]
    summary: str
    operation: OperationOut | None = Field(description="Set when source is operation.")
    event: EventOut | None = Field(description="Set when source is event.")


class ServerErrorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    request_id: str | None = Field(description="The X-Request-ID its caller was given.")
    method: str
    route: str | None = Field(description="The route's template; null when none matched.")
    error_type: str
    message: str = Field(description="The error's message, truncated, secrets masked.")
    traceback: str = Field(description="Its traceback (innermost end kept), secrets masked.")
