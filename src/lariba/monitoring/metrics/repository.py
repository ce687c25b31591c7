"""Metric samples in SQL: recording them, rolling whole hours up into hourly aggregates,
purging what is past retention, and reading a series bucketed with ``date_bin``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.providers.metrics import Sample

# Buckets of every series are aligned on multiples of their step since this moment, so
# hourly aggregates and raw samples fall into the same buckets.
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
# Hours rolled up per transaction: a backlog (a worker that was down for days) is worked
# through in bounded steps.
ROLLUP_BATCH = timedelta(hours=24)
PURGE_BATCH_ROWS = 50_000

# Live: the states in which each kind has something to measure.
LIVE_STATUSES: dict[str, tuple[str, ...]] = {
    "instance": ("running",),
    "bucket": ("available", "modifying"),
    "database": ("available", "modifying"),
}


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class LiveResource:
    id: uuid.UUID
    kind: str
    region: str
    provider_id: str


async def live_resources(
    session: AsyncSession, *, provider: str, after: uuid.UUID | None, limit: int
) -> list[LiveResource]:
    """The next ``limit`` live resources of ``provider`` with an id above ``after``."""
    live = [
        (Resource.kind == kind) & Resource.status.in_(statuses)
        for kind, statuses in LIVE_STATUSES.items()
    ]
    stmt = (
        select(Resource.id, Resource.kind, Resource.region, Resource.provider_id)
        .where(
            Resource.provider == provider,
            Resource.provider_id.is_not(None),
            live[0] | live[1] | live[2],
        )
        .order_by(Resource.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Resource.id > after)
    return [
        LiveResource(id=row.id, kind=row.kind, region=row.region, provider_id=str(row.provider_id))
        for row in await session.execute(stmt)
    ]


async def record(session: AsyncSession, samples: Sequence[Sample]) -> int:
    """Stores the samples; one already stored for the same resource, metric and moment
    is replaced (CloudWatch re-read, a repeated collection). Samples of resources gone
    meanwhile are dropped. Returns how many were stored."""
    unique = {(s.resource_id, s.name, s.at): s for s in samples}
    if not unique:
        return 0
    result = await session.execute(
        text(
            """
            INSERT INTO resource_metric_samples (resource_id, name, at, value)
            SELECT s.resource_id, s.name, s.at, s.value
              FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]),
                          CAST(:ats AS timestamptz[]), CAST(:vals AS float8[]))
                   AS s(resource_id, name, at, value)
              JOIN resources r ON r.id = s.resource_id
            ON CONFLICT (resource_id, name, at) DO UPDATE SET value = EXCLUDED.value
            """
        ),
        {
            "ids": [s.resource_id for s in unique.values()],
            "names": [s.name for s in unique.values()],
            "ats": [s.at for s in unique.values()],
            "vals": [s.value for s in unique.values()],
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class RollupState:
    rolled_through: datetime
    raw_purged_before: datetime | None


async def rollup_state(session: AsyncSession) -> RollupState | None:
    row = (
        await session.execute(
            text("SELECT rolled_through, raw_purged_before FROM resource_metric_rollup_state")
        )
    ).first()
    return RollupState(row.rolled_through, row.raw_purged_before) if row else None


async def roll_up_batch(
    session: AsyncSession, *, now: datetime, reroll: timedelta
) -> datetime | None:
    """Aggregates up to ``ROLLUP_BATCH`` more whole hours into ``resource_metric_hourly``
    in the caller's transaction; returns the new watermark, or None when every whole hour
    is rolled up. Each batch also recomputes the ``reroll`` hours before the watermark
    from the raw samples (late CloudWatch datapoints land there): rows are recomputed, not
    added to, so running twice counts nothing twice. Concurrent runs queue on the state
    row."""
    target = floor_hour(now)
    locked = text("SELECT rolled_through FROM resource_metric_rollup_state FOR UPDATE")
    current = await session.scalar(locked)
    if current is None:  # the first run starts at the first sample's hour
        await session.execute(
            text(
                "INSERT INTO resource_metric_rollup_state (id, rolled_through) "
                "SELECT true, coalesce(date_bin('1 hour', min(at), :origin), :target) "
                "FROM resource_metric_samples ON CONFLICT (id) DO NOTHING"
            ),
            {"origin": ORIGIN, "target": target},
        )
        current = await session.scalar(locked)
    assert isinstance(current, datetime)
    if current >= target:
        return None
    batch_end = min(current + ROLLUP_BATCH, target)
    await session.execute(
        text(
            """
            INSERT INTO resource_metric_hourly
                (resource_id, name, hour, min, max, sum, count)
            SELECT resource_id, name, date_bin('1 hour', at, :origin),
                   min(value), max(value), sum(value), count(*)
              FROM resource_metric_samples
             WHERE at >= :lo AND at < :hi
             GROUP BY 1, 2, 3
            ON CONFLICT (resource_id, name, hour) DO UPDATE
               SET min = EXCLUDED.min, max = EXCLUDED.max,
                   sum = EXCLUDED.sum, count = EXCLUDED.count
            """
        ),
        {"origin": ORIGIN, "lo": current - reroll, "hi": batch_end},
    )
    await session.execute(
        text("UPDATE resource_metric_rollup_state SET rolled_through = :t"), {"t": batch_end}
    )
    return batch_end


async def mark_raw_purged(session: AsyncSession, *, before: datetime) -> None:
    """From now on windows before ``before`` are read from the hourly aggregates (which
    hold them: the caller keeps ``before`` under the rollup's watermark)."""
    await session.execute(
        text(
            "UPDATE resource_metric_rollup_state SET raw_purged_before = "
            "greatest(coalesce(raw_purged_before, :before), :before)"
        ),
        {"before": before},
    )


async def purge_batch(session: AsyncSession, *, table: str, column: str, before: datetime) -> int:
    """Deletes up to ``PURGE_BATCH_ROWS`` rows of ``table`` older than ``before``."""
    assert (table, column) in (
        ("resource_metric_samples", "at"),
        ("resource_metric_hourly", "hour"),
    )
    result = await session.execute(
        text(
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("  # noqa: S608 - checked above
            f"SELECT ctid FROM {table} WHERE {column} < :before LIMIT :limit))"
        ),
        {"before": before, "limit": PURGE_BATCH_ROWS},
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Bucket:
    """One step of a series: the aggregates of the samples in [time, time + step)."""

    time: datetime
    min: float
    max: float
    sum: float
    count: int


async def buckets(
    session: AsyncSession,
    *,
    resource_id: uuid.UUID,
    name: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    hourly_before: datetime | None,
) -> list[Bucket]:
    """The series in [start, end) bucketed by ``step``, oldest first, empty steps left
    out. With ``hourly_before``, the time before it is read from the hourly aggregates
    (``step`` must then be whole hours) and the rest from the raw samples."""
    params = {
        "resource_id": resource_id,
        "name": name,
        "start": start,
        "end": end,
        "step": step,
        "origin": ORIGIN,
        "cut": hourly_before or start,
    }
    hourly = """
        SELECT hour AS at, min, max, sum, count FROM resource_metric_hourly
         WHERE resource_id = :resource_id AND name = :name
           AND hour >= :start AND hour < least(:end, :cut)
        UNION ALL
    """
    rows = await session.execute(
        text(
            f"""
            WITH parts AS (
                {hourly if hourly_before is not None else ""}
                SELECT at, value AS min, value AS max, value AS sum, 1 AS count
                  FROM resource_metric_samples
                 WHERE resource_id = :resource_id AND name = :name
                   AND at >= greatest(:start, :cut) AND at < :end
            )
            SELECT date_bin(:step, at, :origin) AS time, min(min) AS min, max(max) AS max,
                   sum(sum) AS sum, sum(count)::bigint AS count
              FROM parts
             GROUP BY 1
             ORDER BY 1
            """  # noqa: S608 - constant fragments only
        ),
        params,
    )
    return [
        Bucket(r["time"], r["min"], r["max"], r["sum"], int(r["count"])) for r in rows.mappings()
    ]


async def latest(
    session: AsyncSession, *, resource_id: uuid.UUID, names: Sequence[str]
) -> dict[str, tuple[datetime, float]]:
    """Each metric's most recent raw sample, read backwards along the primary key."""
    rows = await session.execute(
        text(
            """
            SELECT n.name, s.at, s.value
              FROM unnest(CAST(:names AS text[])) AS n(name)
              CROSS JOIN LATERAL (
                   SELECT at, value FROM resource_metric_samples
                    WHERE resource_id = :resource_id AND name = n.name
                    ORDER BY at DESC LIMIT 1) s
            """
        ),
        {"resource_id": resource_id, "names": list(names)},
    )
    return {r.name: (r.at, r.value) for r in rows}
