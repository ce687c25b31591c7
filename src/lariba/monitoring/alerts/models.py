"""Alert rules and the log of their state changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from lariba.core.db import Base, TimestampMixin


class AlertRule(TimestampMixin, Base):
    """What is measured (a resource's metric, or the project's cost), how it compares with
    the threshold, and where the rule stands since its last evaluation."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        Index("ix_alert_rules_project_created", "project_id", "created_at", "id"),
        UniqueConstraint("project_id", "name", name="uq_alert_rules_project_name"),
        CheckConstraint(
            "(source_type = 'metric' AND resource_id IS NOT NULL AND metric IS NOT NULL "
            "AND aggregate IS NOT NULL AND window_seconds IS NOT NULL) OR "
            "(source_type = 'cost' AND cost_measure IS NOT NULL)",
            name="source_complete",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    source_type: Mapped[str] = mapped_column(String(16))
    # A metric rule goes with its resource: a deleted resource's rows are purged with it.
    resource_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    metric: Mapped[str | None] = mapped_column(String(32))
    aggregate: Mapped[str | None] = mapped_column(String(8))
    cost_measure: Mapped[str | None] = mapped_column(String(32))
    comparison: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    # None only for cost measures of the month (month to date, its forecast).
    window_seconds: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    emails: Mapped[list[str]] = mapped_column(ARRAY(String(254)), server_default=text("'{}'"))
    state: Mapped[str] = mapped_column(String(24), server_default=text("'insufficient_data'"))
    state_since: Mapped[datetime] = mapped_column(server_default=func.now())
    last_value: Mapped[Decimal | None] = mapped_column(Numeric)
    last_evaluated_at: Mapped[datetime | None]


class AlertStateChange(Base):
    """One change of a rule's state, with the value that caused it and the e-mail
    addresses notified (the e-mail job reads them here, so no address is a job argument)."""

    __tablename__ = "alert_state_changes"
    __table_args__ = (Index("ix_alert_state_changes_rule_id", "rule_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    value: Mapped[Decimal | None] = mapped_column(Numeric)
    threshold: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    emails: Mapped[list[str]] = mapped_column(ARRAY(String(254)), server_default=text("'{}'"))
