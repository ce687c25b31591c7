"""Request and response bodies of alert rules and their history."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from lariba.core.addresses import EmailAddress
from lariba.core.numbers import DecimalAmount
from lariba.monitoring.alerts.models import AlertRule, AlertStateChange
from lariba.monitoring.metrics.definitions import Aggregate
from lariba.monitoring.metrics.errors import InvalidQuery
from lariba.monitoring.metrics.service import format_step, parse_step

Comparison = Literal[">", ">=", "<", "<="]
State = Literal["ok", "alerting", "insufficient_data"]
CostMeasure = Literal["month_to_date", "end_of_month_forecast", "window"]
MAX_EMAILS = 10


def plain(value: Decimal) -> Decimal:
    """``80.000000`` as ``80``, ``0.500000`` as ``0.5``: what was meant, without the
    column's scale (and never in exponent form)."""
    return Decimal(format(value.normalize(), "f"))


class MetricSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["metric"]
    resource_id: uuid.UUID = Field(description="An instance, bucket or database of the project.")
    metric: str = Field(
        max_length=64,
        description="One of the resource kind's metrics (GET .../metrics/names), e.g. "
        "`cpu_percent`.",
    )
    aggregate: Aggregate | None = Field(
        default=None,
        description="How the window's samples become one value: avg, min, max, sum or "
        "count. Default: the metric's (`sum` for network bytes, `avg` otherwise).",
    )


class CostSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["cost"]
    measure: CostMeasure = Field(
        description="`month_to_date`: the UTC month's cost so far; `end_of_month_forecast`: "
        "its forecast; `window`: the cost over the rule's last `window`."
    )


Source = Annotated[MetricSource | CostSource, Field(discriminator="type")]
Threshold = Annotated[
    DecimalAmount,
    Field(
        max_digits=24,
        decimal_places=6,
        description="Compared with the measured value (percent, bytes, USD ...).",
        examples=["80"],
    ),
]
Window = Annotated[
    str,
    Field(
        max_length=16,
        description="The span measured, ending at each evaluation: `5m`, `1h`, `1d` (metrics: "
        "1m to 24h; cost `window`: 1m to 31d). Not used by the month's cost measures.",
        examples=["5m"],
    ),
]
# No control characters: the name is an e-mail's subject.
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
Emails = Annotated[
    list[EmailAddress],
    Field(
        max_length=MAX_EMAILS,
        description="Addresses e-mailed when the rule triggers and resolves (needs SMTP "
        "configured by the operator).",
    ),
]


def _check_window(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return format_step(parse_step(value))
    except InvalidQuery as exc:
        raise ValueError(exc.detail.removeprefix("step: ")) from None


class AlertRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    source: Source
    comparison: Comparison
    threshold: Threshold
    window: Window | None = None
    enabled: StrictBool = True
    emails: Emails = Field(default_factory=list)

    _window = field_validator("window")(_check_window)


class AlertRuleUpdate(BaseModel):
    """Only the fields sent change; `source` is replaced as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    source: Source | None = None
    comparison: Comparison | None = None
    threshold: Threshold | None = None
    window: Window | None = None
    enabled: StrictBool | None = None
    emails: Emails | None = None

    _window = field_validator("window")(_check_window)


class MetricSourceOut(BaseModel):
    type: Literal["metric"] = "metric"
    resource_id: uuid.UUID
    metric: str
    aggregate: Aggregate


class CostSourceOut(BaseModel):
    type: Literal["cost"] = "cost"
    measure: CostMeasure


def source_out(rule: AlertRule) -> MetricSourceOut | CostSourceOut:
    if rule.source_type == "metric":
        assert rule.resource_id is not None
        assert rule.metric
        assert rule.aggregate
        return MetricSourceOut(
            resource_id=rule.resource_id,
            metric=rule.metric,
            aggregate=rule.aggregate,
        )
    return CostSourceOut(measure=rule.cost_measure)


def window_out(rule: AlertRule) -> str | None:
    return format_step(timedelta(seconds=rule.window_seconds)) if rule.window_seconds else None


class AlertRuleOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    source: MetricSourceOut | CostSourceOut
    comparison: Comparison
    threshold: Decimal
    window: str | None
    enabled: bool
    emails: list[str]
    state: State = Field(
        description="`ok`, `alerting`, or `insufficient_data` (not evaluated yet, or a "
        "metric without samples in the window)."
    )
    state_since: datetime
    last_value: Decimal | None = Field(description="The value measured at the last evaluation.")
    last_evaluated_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: AlertRule) -> AlertRuleOut:
        return cls(
            id=rule.id,
            project_id=rule.project_id,
            name=rule.name,
            source=source_out(rule),
            comparison=rule.comparison,
            threshold=plain(rule.threshold),
            window=window_out(rule),
            enabled=rule.enabled,
            emails=rule.emails,
            state=rule.state,
            state_since=rule.state_since,
            last_value=plain(rule.last_value) if rule.last_value is not None else None,
            last_evaluated_at=rule.last_evaluated_at,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
        )


class AlertStateChangeOut(BaseModel):
    id: int
    at: datetime
    from_state: State
    to_state: State
    value: Decimal | None = Field(description="The value that caused the change.")
    threshold: Decimal = Field(description="The rule's threshold at the time.")

    @classmethod
    def of(cls, change: AlertStateChange) -> AlertStateChangeOut:
        return cls(
            id=change.id,
            at=change.at,
            from_state=change.from_state,
            to_state=change.to_state,
            value=plain(change.value) if change.value is not None else None,
            threshold=plain(change.threshold),
        )
