"""Tables of the lifecycle engine: resources, their operations and events, project quotas."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from lariba.core.db import Base, TimestampMixin


class ResourceStatus(StrEnum):
    """EC2's vocabulary: pending → provisioning → running ⇄ stopping / stopped → deleting →
    deleted, and ``error`` with a reason. Kinds that do not run (buckets, databases) are
    ``available`` instead of running, and ``modifying`` while they change."""

    pending = "pending"
    provisioning = "provisioning"
    running = "running"
    # Buckets and databases: ready to use (RDS's word); being changed (a resize).
    available = "available"
    modifying = "modifying"
    stopping = "stopping"
    stopped = "stopped"
    deleting = "deleting"
    deleted = "deleted"
    error = "error"


class DesiredState(StrEnum):
    running = "running"
    available = "available"
    stopped = "stopped"
    deleted = "deleted"


class OperationType(StrEnum):
    create = "create"
    start = "start"
    stop = "stop"
    reboot = "reboot"
    resize = "resize"
    update = "update"
    delete = "delete"
    # Databases: a new password, applied at the provider.
    reset_password = "reset_password"  # noqa: S105 - an operation type


class OperationStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


ACTIVE_OPERATION = (OperationStatus.pending.value, OperationStatus.running.value)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


class Resource(TimestampMixin, Base):
    """One resource of a project. The API writes the desired side (spec, desired_state,
    generation, labels); the reconciler writes the observed side (status, provider_id,
    observed, observed_generation)."""

    __tablename__ = "resources"
    __table_args__ = (
        # A name is taken until its resource is deleted.
        Index(
            "uq_resources_project_kind_name",
            "project_id",
            "kind",
            "name",
            unique=True,
            postgresql_where=text("status <> 'deleted'"),
        ),
        Index("ix_resources_project_kind_created", "project_id", "kind", "created_at", "id"),
        Index("ix_resources_labels", "labels", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(63))
    region: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    desired_state: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    observed: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # What the resource counts against its project's quotas ({"instances": 1, "vcpus": 2}).
    usage: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    generation: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    observed_generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Creates attempted at the provider: above 0, look the resource up by tag before creating.
    create_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Consecutive retriable provider failures, for backoff; reset by a successful pass.
    retries: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    deleted_at: Mapped[datetime | None]


class Operation(Base):
    """A change a user asked for, and how it went. Kept after completion."""

    __tablename__ = "operations"
    __table_args__ = (
        # At most one operation in flight per resource: a second conflicting one is a 409.
        Index(
            "uq_operations_one_active_per_resource",
            "resource_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
        Index("ix_operations_project_created", "project_id", "created_at", "id"),
        Index("ix_operations_resource_created", "resource_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    resource_kind: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    progress: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The resource generation this operation is done at.
    target_generation: Mapped[int] = mapped_column(Integer)
    created_by_type: Mapped[str] = mapped_column(String(16))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by_label: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class TransactionId(UserDefinedType[int]):
    """PostgreSQL's ``xid8``: a transaction id that never wraps around, as a Python int
    (the driver has no loader for it, so it travels as text)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"

    def bind_processor(self, dialect: Dialect) -> Callable[[int | None], str | None]:
        return lambda value: None if value is None else str(value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], int | None]:
        return lambda value: None if value is None else int(value)


class ResourceEvent(Base):
    """Every status change of a resource, and drift seen at the provider: the feed
    monitoring, webhooks and the console read."""

    __tablename__ = "resource_events"
    __table_args__ = (
        Index("ix_resource_events_project_id", "project_id", "id"),
        Index("ix_resource_events_resource_id", "resource_id", "id"),
        Index("ix_resource_events_project_id_xid", "project_id", "xid", "id"),
        # The activity feed pages a project's events by time.
        Index("ix_resource_events_project_occurred", "project_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    resource_kind: Mapped[str] = mapped_column(String(32))
    operation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    type: Mapped[str] = mapped_column(String(32))  # status_changed | drift
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The writing transaction: the live stream delivers an event only once every
    # transaction that could still commit an earlier one has ended (see 0010).
    xid: Mapped[int] = mapped_column(TransactionId(), server_default=func.pg_current_xact_id())


class ProjectQuota(Base):
    """A project's limits where they differ from the platform defaults."""

    __tablename__ = "project_quotas"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    limits: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
