"""Metric samples as collected (``resource_metric_samples``, kept for
``metrics_retention_days``) and their hourly aggregates (``resource_metric_hourly``, kept
for ``metrics_hourly_retention_days``), written by the rollup job up to its watermark."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Double, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from lariba.core.db import Base


class MetricSample(Base):
    __tablename__ = "resource_metric_samples"
    __table_args__ = (Index("ix_resource_metric_samples_at", "at"),)

    resource_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(Double)


class MetricHourly(Base):
    __tablename__ = "resource_metric_hourly"
    __table_args__ = (Index("ix_resource_metric_hourly_hour", "hour"),)

    resource_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    min: Mapped[float] = mapped_column(Double)
    max: Mapped[float] = mapped_column(Double)
    # The sum, not the average: averages of several hours are then exact.
    sum: Mapped[float] = mapped_column(Double)
    count: Mapped[int] = mapped_column(BigInteger)


class MetricRollupState(Base):
    """One row. Hours before ``rolled_through`` are in ``resource_metric_hourly``; raw
    samples before ``raw_purged_before`` are gone."""

    __tablename__ = "resource_metric_rollup_state"
    __table_args__ = (CheckConstraint("id", name="single_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    rolled_through: Mapped[datetime]
    raw_purged_before: Mapped[datetime | None]
