"""A project's monthly budget and the thresholds already notified this month."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Integer, Numeric, String, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from lariba.core.db import Base


class Budget(Base):
    __tablename__ = "budgets"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # Percentages of the amount, ascending.
    thresholds: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    block_provisioning: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # The UTC month (YYYY-MM) ``notified`` belongs to: a new month starts with none.
    notified_month: Mapped[str | None] = mapped_column(String(7))
    notified: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
