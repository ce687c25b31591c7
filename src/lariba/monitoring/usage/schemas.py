"""Response bodies of usage and cost reports."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from lariba.monitoring.usage.repository import Dimension, ReportRow

QUANTUM = Decimal("0.000001")


def rounded(value: Decimal) -> Decimal:
    """Six decimal places: micro-dollars, and quantities to a millionth of their unit."""
    return value.quantize(QUANTUM)


class ResourceRef(BaseModel):
    id: uuid.UUID
    kind: str
    name: str | None = Field(description="Null when the resource's record is gone.")

    @classmethod
    def of(cls, row: ReportRow) -> ResourceRef | None:
        if row.resource_id is None or row.resource_kind is None:
            return None
        return cls(id=row.resource_id, kind=row.resource_kind, name=row.resource_name)


class ReportWindow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(serialization_alias="from", description="Inclusive.")
    end: datetime = Field(serialization_alias="to", description="Exclusive; never later than now.")
    group_by: list[Dimension]


class UsageItem(BaseModel):
    meter: str = Field(
        description="instance, database, database_storage, snapshot_storage or bucket_storage."
    )
    sku: str = Field(description="The size for instances and databases; `gib` or `bytes`.")
    quantity: Decimal = Field(description="In `unit`: Hours or GiB-Months (730 hours).")
    unit: str
    metered_quantity: Decimal = Field(
        description="What was recorded: quantity times seconds, in `metered_unit`."
    )
    metered_unit: str
    cost_usd: Decimal
    day: date | None = Field(default=None, description="The UTC day, grouped by day.")
    resource: ResourceRef | None = Field(default=None, description="Grouped by resource.")


class UsageReport(ReportWindow):
    project_id: uuid.UUID
    items: list[UsageItem]


class CostItem(BaseModel):
    cost_usd: Decimal
    day: date | None = None
    resource: ResourceRef | None = None
    resource_kind: str | None = None
    meter: str | None = None
    sku: str | None = None


class Forecast(BaseModel):
    month: str = Field(description="The current UTC month, YYYY-MM.")
    month_to_date_usd: Decimal
    run_rate_usd_per_hour: Decimal = Field(
        description="What the project's running meters cost per hour now."
    )
    end_of_month_usd: Decimal = Field(
        description="Month to date plus the run rate until the month ends."
    )


class CostReport(ReportWindow):
    project_id: uuid.UUID
    currency: str = "USD"
    total_usd: Decimal
    items: list[CostItem]
    forecast: Forecast
