"""Tables of the monitoring service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from lariba.core.db import Base, TimestampMixin


class ServerError(Base):
    """An unhandled error of the API (a 500), kept for platform admins with the request id
    its caller was given; never a request body or header. Purged after
    ``server_error_retention_days``."""

    __tablename__ = "server_errors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    method: Mapped[str] = mapped_column(String(16))
    # The route's template (/v1/projects/{project_id}/...), never the path with its ids.
    route: Mapped[str | None] = mapped_column(String(512))
    error_type: Mapped[str] = mapped_column(String(256))
    message: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str] = mapped_column(Text)


class Webhook(TimestampMixin, Base):
    """An HTTPS endpoint of a project that receives its events, signed with its secret."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_project_created", "project_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    # Exact types (resource.drift), families (resource.*) or everything (*).
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # core.secrets.SecretBox token, purpose bound to the webhook id.
    secret_encrypted: Mapped[str] = mapped_column(Text)


class WebhookDelivery(TimestampMixin, Base):
    """One event for one webhook, sent until a 2xx or out of attempts. Its id is the
    ``Lariba-Webhook-Id`` header, the same on every attempt and replay."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_seq", "webhook_id", "seq"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    # Newest-first paging of the delivery log.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    # Attempts of the current series; a replay starts a new series at 0.
    attempt_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    series: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    # A sender's lease: while it runs no other sender takes the delivery; a sender that
    # dies mid-attempt loses it when it expires, and the delivery is sent again.
    claim_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    claimed_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookAttempt(Base):
    """One POST of a delivery and how it went: the delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    series: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # The start of the receiver's answer, for debugging; never more than a few KiB.
    response_body: Mapped[str | None] = mapped_column(Text)
