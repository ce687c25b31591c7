"""Metered usage. ``usage_segments`` are written by a database trigger on ``resources``
(migration 0008), never by the application: one row per stretch of time a meter ran at
one quantity. ``usage_daily`` holds whole past UTC days, summed by the rollup job.
``usage_request_counts`` counts API requests by the hour."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Identity, Numeric, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from lariba.core.db import Base


class UsageSegment(Base):
    __tablename__ = "usage_segments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    resource_kind: Mapped[str] = mapped_column(String(32))
    meter: Mapped[str] = mapped_column(String(32))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Numeric)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class UsageDaily(Base):
    __tablename__ = "usage_daily"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    resource_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    meter: Mapped[str] = mapped_column(String(32), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_kind: Mapped[str] = mapped_column(String(32))
    # quantity times seconds: instance-seconds, GiB-seconds, byte-seconds.
    amount: Mapped[Decimal] = mapped_column(Numeric)


class UsageRequestCount(Base):
    """API requests a project's members made, per hour (``hour`` is its start, UTC)."""

    __tablename__ = "usage_request_counts"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)


class UsageRollupState(Base):
    __tablename__ = "usage_rollup_state"

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    rolled_through: Mapped[date] = mapped_column(Date)
