"""Response bodies of metric series and of the metrics a resource has."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lariba.cloud.engine.models import Resource
from lariba.monitoring.metrics.definitions import Aggregate
from lariba.monitoring.metrics.service import Available, Series, format_step


class ResourceRef(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    provider: str
    status: str

    @classmethod
    def of(cls, resource: Resource) -> ResourceRef:
        return cls(
            id=resource.id,
            kind=resource.kind,
            name=resource.name,
            provider=resource.provider,
            status=resource.status,
        )


class PointOut(BaseModel):
    time: datetime = Field(description="Start of the step: the point covers [time, time + step).")
    value: float


class SeriesOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    resource: ResourceRef
    name: str
    unit: str
    aggregate: Aggregate
    start: datetime = Field(
        serialization_alias="from",
        description="Inclusive: the `from` asked for, rounded down to a multiple of the step.",
    )
    end: datetime = Field(serialization_alias="to", description="Exclusive, as asked.")
    step: str = Field(description="Like `60s`, `5m`, `1h`, `1d`.")
    step_seconds: int
    source: Literal["raw", "hourly"] = Field(
        description="`raw`: from the samples as collected; `hourly`: the window reaches back "
        "before the raw samples kept, and is read from hourly aggregates (and raw samples "
        "for the hours not rolled up yet)."
    )
    points: list[PointOut] = Field(description="Oldest first; steps without samples are left out.")

    @classmethod
    def of(cls, series: Series) -> SeriesOut:
        return cls(
            resource=ResourceRef.of(series.resource),
            name=series.metric.name,
            unit=series.metric.unit,
            aggregate=series.aggregate,
            start=series.start,
            end=series.end,
            step=format_step(series.step),
            step_seconds=int(series.step.total_seconds()),
            source=series.source,
            points=[PointOut(time=p.time, value=p.value) for p in series.points],
        )


class LatestOut(BaseModel):
    time: datetime
    value: float


class MetricOut(BaseModel):
    name: str
    kind: str = Field(description="instance, bucket or database.")
    unit: str
    description: str
    default_aggregate: Aggregate = Field(description="The aggregate of a series unless asked.")
    providers: list[str] = Field(description="The providers that report it.")
    reported: bool | None = Field(
        description="Whether this resource's provider reports it; null without `resource`."
    )
    latest: LatestOut | None = Field(
        description="The most recent sample of this resource; null without one or without "
        "`resource`."
    )

    @classmethod
    def of(cls, item: Available) -> MetricOut:
        m = item.metric
        return cls(
            name=m.name,
            kind=m.kind,
            unit=m.unit,
            description=m.description,
            default_aggregate=m.aggregate,
            providers=sorted(m.providers),
            reported=item.reported,
            latest=LatestOut(time=item.latest[0], value=item.latest[1]) if item.latest else None,
        )


class MetricList(BaseModel):
    resource: ResourceRef | None
    items: list[MetricOut]
