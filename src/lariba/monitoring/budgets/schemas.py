"""Request and response bodies of budgets."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from lariba.core.numbers import DecimalAmount, WholeNumber

DEFAULT_THRESHOLDS = [50, 80, 100]


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_usd: Annotated[
        DecimalAmount,
        Field(gt=0, max_digits=14, decimal_places=2, description="The monthly amount, in USD."),
    ]
    thresholds: Annotated[
        list[Annotated[WholeNumber, Field(ge=1, le=1000)]],
        Field(
            min_length=1,
            max_length=10,
            description="Percentages of the amount that notify when the month's cost reaches them.",
        ),
    ] = DEFAULT_THRESHOLDS
    block_provisioning: StrictBool = Field(
        default=False,
        description="Refuse new instances, buckets and databases (403 `budget_exceeded`) "
        "once the month's cost reaches the amount.",
    )

    @field_validator("thresholds")
    @classmethod
    def _distinct(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError("thresholds must be distinct")
        return sorted(values)


class BudgetStatus(BaseModel):
    month: str = Field(description="The current UTC month, YYYY-MM.")
    month_to_date_usd: Decimal
    end_of_month_usd: Decimal = Field(description="The month's forecast (see the cost report).")
    percent_used: Decimal = Field(description="Month to date, in percent of the amount.")
    thresholds_reached: list[int]
    provisioning_blocked: bool


class BudgetOut(BaseModel):
    amount_usd: Decimal
    thresholds: list[int]
    block_provisioning: bool
    status: BudgetStatus
