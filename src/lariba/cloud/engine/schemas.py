"""Response bodies of operations, events and quotas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lariba.cloud.engine.models import Operation, ResourceEvent
from lariba.cloud.engine.quotas import QuotaUse
from lariba.core.numbers import WholeNumber


class OperationError(BaseModel):
    code: str
    message: str


class OperationResource(BaseModel):
    id: uuid.UUID
    kind: str


class Actor(BaseModel):
    type: str
    id: uuid.UUID | None
    label: str | None


class OperationOut(BaseModel):
    """A change a user asked for and how it went: ``pending`` (queued), ``running``,
    then ``succeeded`` or ``failed`` (with ``error``)."""

    id: uuid.UUID
    project_id: uuid.UUID
    resource: OperationResource
    type: str = Field(
        description="create, start, stop, reboot, resize, update, delete or reset_password."
    )
    status: Literal["pending", "running", "succeeded", "failed"]
    progress: str | None = Field(description="What is happening now, while it runs.")
    error: OperationError | None
    params: dict[str, Any]
    created_by: Actor
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, operation: Operation) -> OperationOut:
        return cls(
            id=operation.id,
            project_id=operation.project_id,
            resource=OperationResource(id=operation.resource_id, kind=operation.resource_kind),
            type=operation.type,
            status=operation.status,
            progress=operation.progress,
            error=OperationError(**operation.error) if operation.error else None,
            params=operation.params,
            created_by=Actor(
                type=operation.created_by_type,
                id=operation.created_by_id,
                label=operation.created_by_label,
            ),
            created_at=operation.created_at,
            started_at=operation.started_at,
            finished_at=operation.finished_at,
            updated_at=operation.updated_at,
        )


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    resource_id: uuid.UUID
    resource_kind: str
    operation_id: uuid.UUID | None
    type: str = Field(description="status_changed, or drift (seen at the provider).")
    from_status: str | None
    to_status: str
    reason: str | None
    occurred_at: datetime

    @classmethod
    def of(cls, event: ResourceEvent) -> EventOut:
        return cls.model_validate(event)


class QuotaOut(BaseModel):
    name: str = Field(
        description="instances, vcpus, buckets, storage_bytes, databases or database_storage_gb."
    )
    limit: int
    in_use: int = Field(description="Held by resources that exist at the provider.")
    reserved: int = Field(description="Held by accepted resources not yet created.")
    available: int

    @classmethod
    def of(cls, use: QuotaUse) -> QuotaOut:
        return cls(
            name=use.name,
            limit=use.limit,
            in_use=use.in_use,
            reserved=use.reserved,
            available=use.available,
        )


class QuotaList(BaseModel):
    items: list[QuotaOut]


class QuotaUpdate(BaseModel):
    """New limits; quotas not named keep theirs."""

    model_config = ConfigDict(extra="forbid")

    instances: WholeNumber | None = Field(default=None, ge=0, le=100_000)
    vcpus: WholeNumber | None = Field(default=None, ge=0, le=1_000_000)
    buckets: WholeNumber | None = Field(default=None, ge=0, le=100_000)
    storage_bytes: WholeNumber | None = Field(default=None, ge=0, le=2**62)
    databases: WholeNumber | None = Field(default=None, ge=0, le=100_000)
    database_storage_gb: WholeNumber | None = Field(default=None, ge=0, le=10_000_000)
