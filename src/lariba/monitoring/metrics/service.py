"""Reading metric series: ``series`` is what the API and alert rules call; it checks the
resource is the project's and the metric is its kind's, picks raw samples or hourly
aggregates, and bounds the number of points."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.cloud.engine.operations import database_now
from lariba.core.errors import NotFound
from lariba.monitoring.metrics import repository
from lariba.monitoring.metrics.definitions import METRICS, Aggregate, Metric, metric, metrics_of
from lariba.monitoring.metrics.errors import InvalidQuery
from lariba.monitoring.metrics.repository import HOUR, ORIGIN, Bucket

MAX_POINTS = 1500
DEFAULT_WINDOW = timedelta(hours=1)
# Without a step: the first of these giving at most AUTO_POINTS points.
AUTO_STEPS = tuple(timedelta(seconds=s) for s in (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400))
AUTO_POINTS = 300
_STEP = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_step(value: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d``."""
    match = _STEP.fullmatch(value.strip())
    if match is None:
        raise InvalidQuery(
            "step",
            f"{value!r} is not a step: use a whole number of seconds, minutes, hours or "
            "days, such as 60s, 5m, 1h or 1d.",
            code="invalid_step",
        )
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def format_step(step: timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Point:
    time: datetime
    value: float


@dataclass(frozen=True)
class Series:
    resource: Resource
    metric: Metric
    start: datetime
    end: datetime
    step: timedelta
    aggregate: Aggregate
    source: Literal["raw", "hourly"]
    points: list[Point]


async def project_resource(
    session: AsyncSession, *, project_id: uuid.UUID, resource_id: uuid.UUID
) -> Resource:
    """The project's resource, deleted ones included (their history stays readable);
    404 ``resource_not_found`` otherwise, another project's resource included."""
    resource = await session.scalar(
        select(Resource).where(Resource.id == resource_id, Resource.project_id == project_id)
    )
    if resource is None:
        raise NotFound(f"Resource {resource_id} not found.", code="resource_not_found")
    return resource


def _metric(resource: Resource, name: str) -> Metric:
    found = metric(resource.kind, name)
    if found is None:
        known = ", ".join(m.name for m in metrics_of(resource.kind)) or "none"
        raise InvalidQuery(
            "name",
            f"{resource.kind} resources have no metric {name!r} (they have: {known}).",
            code="unknown_metric",
        )
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _floor(moment: datetime, step: timedelta) -> datetime:
    return ORIGIN + ((moment - ORIGIN) // step) * step


def _points(start: datetime, end: datetime, step: timedelta) -> int:
    return -((_floor(start, step) - end) // step)


def _value(bucket: Bucket, aggregate: Aggregate) -> float:
    if aggregate == "avg":
        return bucket.sum / bucket.count
    if aggregate == "count":
        return float(bucket.count)
    return float(getattr(bucket, aggregate))


async def series(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    resource_id: uuid.UUID,
    name: str,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta | None = None,
    aggregate: Aggregate | None = None,
) -> Series:
    """``name`` of the resource over [start, end) (default: the last hour), one point
    per ``step`` (default: at most ~300 points) aligned on multiples of the step since
    2000-01-01T00:00Z (``start`` is rounded down to one), each the ``aggregate``
    (default: the metric's) of its samples; steps without samples are left out.
    Windows reaching back before the raw samples still kept are read from the hourly
    aggregates, and need a step of whole hours."""
    resource = await project_resource(session, project_id=project_id, resource_id=resource_id)
    found = _metric(resource, name)
    if end is None or start is None:
        now = await database_now(session)
        end = _aware(end) if end is not None else now
        start = _aware(start) if start is not None else end - DEFAULT_WINDOW
    start, end = _aware(start), _aware(end)
    if start >= end:
        raise InvalidQuery("from", "`from` must be earlier than `to`.", code="invalid_window")
    state = await repository.rollup_state(session)
    purged = state.raw_purged_before if state is not None else None
    if step is None:
        step = _auto_step(start, end, hourly=purged is not None and start < purged)
    if step <= timedelta(0):
        raise InvalidQuery("step", "`step` must be positive.", code="invalid_step")
    aligned = _floor(start, step)
    count = _points(start, end, step)
    if count > MAX_POINTS:
        shortest = (end - aligned) / MAX_POINTS
        raise InvalidQuery(
            "step",
            f"{format_step(step)} steps over this window make {count} points, more than "
            f"{MAX_POINTS}: choose a step of at least {int(shortest.total_seconds()) + 1}s "
            "or a shorter window.",
            code="too_many_points",
        )
    hourly = purged is not None and aligned < purged
    if hourly and step % HOUR:
        assert purged is not None
        raise InvalidQuery(
            "step",
            f"raw samples before {purged.isoformat()} are no longer kept: a window reaching "
            "back before then is read from hourly aggregates and needs a step of whole "
            "hours (1h, 6h, 1d ...).",
            code="step_too_fine",
        )
    assert state is not None or not hourly
    rows = await repository.buckets(
        session,
        resource_id=resource.id,
        name=name,
        start=aligned,
        end=end,
        step=step,
        hourly_before=state.rolled_through if hourly and state is not None else None,
    )
    chosen = aggregate or found.aggregate
    return Series(
        resource=resource,
        metric=found,
        start=aligned,
        end=end,
        step=step,
        aggregate=chosen,
        source="hourly" if hourly else "raw",
        points=[Point(time=b.time, value=_value(b, chosen)) for b in rows],
    )


def _auto_step(start: datetime, end: datetime, *, hourly: bool) -> timedelta:
    candidates = [s for s in AUTO_STEPS if not hourly or s % HOUR == timedelta(0)]
    return next((s for s in candidates if _points(start, end, s) <= AUTO_POINTS), candidates[-1])


@dataclass(frozen=True)
class Available:
    metric: Metric
    # Whether the resource's provider reports it (None: no resource asked about).
    reported: bool | None
    latest: tuple[datetime, float] | None


async def available(
    session: AsyncSession, *, project_id: uuid.UUID, resource_id: uuid.UUID | None
) -> tuple[Resource | None, list[Available]]:
    """Every metric of every kind, or those of the resource's kind with its latest
    values."""
    if resource_id is None:
        return None, [Available(m, None, None) for m in METRICS]
    resource = await project_resource(session, project_id=project_id, resource_id=resource_id)
    metrics = metrics_of(resource.kind)
    latest = await repository.latest(
        session, resource_id=resource.id, names=[m.name for m in metrics]
    )
    return resource, [
        Available(m, resource.provider in m.providers, latest.get(m.name)) for m in metrics
    ]
