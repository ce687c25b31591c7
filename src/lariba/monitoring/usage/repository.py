"""Usage and cost in SQL. A report sums whole past days from ``usage_daily`` and cuts the
rest (the current day, partial days at the edges) from ``usage_segments``, splitting each
segment at UTC midnights; the rollup job writes whole days with the same cut."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import RowMapping, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.monitoring.usage.meters import METERS, Price

# A whole day is rolled up this long after it ends: longer than any transaction that could
# still commit a segment starting in it (segments start at their transaction's start).
ROLLUP_GRACE = timedelta(hours=1)
ROLLUP_BATCH_DAYS = 31


class Dimension(StrEnum):
    day = "day"
    resource = "resource"
    resource_kind = "resource_kind"
    meter = "meter"


# What each dimension adds to a report's SELECT, and to its GROUP BY: usage is summed per
# meter and size within the dimensions first (``g``), then priced. A resource's name,
# region and labels depend on its id: grouping by ``r.id`` lets them be selected.
_COLUMNS: dict[Dimension, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Dimension.day: (("g.day",), ("g.day",)),
    Dimension.resource: (
        (
            "g.resource_id",
            "g.resource_kind",
            "r.name AS resource_name",
            "r.region AS region",
            "r.labels AS labels",
        ),
        ("g.resource_id", "g.resource_kind", "r.id"),
    ),
    Dimension.resource_kind: (("g.resource_kind",), ("g.resource_kind",)),
    Dimension.meter: (("g.meter", "g.sku"), ("g.meter", "g.sku")),
}
_SUMMED_BY: dict[Dimension, tuple[str, ...]] = {
    Dimension.day: ("day",),
    Dimension.resource: ("resource_id", "resource_kind"),
    Dimension.resource_kind: ("resource_kind",),
    Dimension.meter: (),
}

# Every segment's stretch inside the window [:lo{n}, :hi{n}), one piece per UTC day it
# spans; open segments run until :upto. Days are cut in UTC, where each has 24 hours. The
# two range conditions let PostgreSQL pick the index that suits the window: one early in
# a project's history (started_at) or a recent one (ended_at).
_PIECES = """
    SELECT s.project_id, s.resource_id, s.resource_kind, s.meter, s.sku,
           d.day::date AS day,
           s.quantity * extract(epoch FROM
               least(seg.e, d.day + interval '1 day') - greatest(seg.b, d.day)) AS amount
      FROM usage_segments s
     CROSS JOIN LATERAL (
           SELECT greatest(s.started_at, :lo{n}) AT TIME ZONE 'UTC' AS b,
                  least(coalesce(s.ended_at, :upto), :hi{n}) AT TIME ZONE 'UTC' AS e) seg
     CROSS JOIN LATERAL generate_series(
           date_trunc('day', seg.b), seg.e - interval '1 microsecond', interval '1 day') d(day)
     WHERE s.started_at < :hi{n} AND (s.ended_at > :lo{n} OR s.ended_at IS NULL)
       AND seg.e > seg.b {project_filter}
"""


def _pieces(
    windows: Sequence[tuple[datetime, datetime]], *, project_filter: str
) -> tuple[list[str], dict[str, datetime]]:
    """A SELECT of segment pieces per non-empty window, and their parameters."""
    kept = [(lo, hi) for lo, hi in windows if lo < hi]
    params: dict[str, datetime] = {}
    for n, (lo, hi) in enumerate(kept):
        params[f"lo{n}"], params[f"hi{n}"] = lo, hi
    return [_PIECES.format(n=n, project_filter=project_filter) for n in range(len(kept))], params


_PRICED = """
    meter_units(meter, per_unit) AS (
        SELECT * FROM unnest(CAST(:meter_names AS text[]), CAST(:meter_per_units AS numeric[]))),
    prices(meter, sku, unit_price) AS (
        SELECT * FROM unnest(CAST(:price_meters AS text[]), CAST(:price_skus AS text[]),
                             CAST(:price_values AS numeric[])))
"""


def _price_params(prices: Sequence[Price]) -> dict[str, Any]:
    return {
        "meter_names": list(METERS),
        "meter_per_units": [Decimal(m.per_unit) for m in METERS.values()],
        "price_meters": [p.meter for p in prices],
        "price_skus": [p.sku for p in prices],
        "price_values": [p.unit_price_usd for p in prices],
    }


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True)
class ReportRow:
    """One group of a report: the dimensions asked for (others are None), the metered
    amount (``Meter.metered_unit``; only meaningful grouped by meter) and its cost."""

    day: date | None
    resource_id: uuid.UUID | None
    resource_name: str | None
    resource_kind: str | None
    region: str | None
    labels: dict[str, str] | None
    meter: str | None
    sku: str | None
    amount: Decimal
    cost_usd: Decimal

    @classmethod
    def of(cls, row: RowMapping) -> ReportRow:
        return cls(
            day=row.get("day"),
            resource_id=row.get("resource_id"),
            resource_name=row.get("resource_name"),
            resource_kind=row.get("resource_kind"),
            region=row.get("region"),
            labels=row.get("labels"),
            meter=row.get("meter"),
            sku=row.get("sku"),
            amount=row["amount"],
            cost_usd=row["cost_usd"],
        )


@dataclass(frozen=True)
class Window:
    """[start, end) of a report, counted until ``upto`` (the database's now)."""

    start: datetime
    end: datetime
    upto: datetime


def _report_query(
    *,
    project_id: uuid.UUID,
    window: Window,
    rolled_through: date | None,
    dimensions: Sequence[Dimension],
    prices: Sequence[Price],
) -> tuple[TextClause, dict[str, Any]]:
    """Whole days before ``rolled_through`` come from the rollups, the rest from the
    segments; None reads only segments."""
    start, end = window.start, min(window.end, window.upto)
    full_from = start.astimezone(UTC).date()
    if midnight(full_from) < start:
        full_from += timedelta(days=1)
    full_to = min(end.astimezone(UTC).date(), rolled_through or full_from)
    if full_to <= full_from:
        full_from = full_to = start.astimezone(UTC).date()
        raw_windows = [(start, end)]
    else:
        raw_windows = [(start, midnight(full_from)), (midnight(full_to), end)]
    pieces, window_params = _pieces(raw_windows, project_filter="AND s.project_id = :project_id")
    rolled = """
        SELECT project_id, resource_id, resource_kind, meter, sku, day, amount
          FROM usage_daily
         WHERE project_id = :project_id AND day >= :full_from AND day < :full_to
    """
    # Requests are counted by the hour: every hour that overlaps the window is in it.
    requests = """
        SELECT project_id, project_id AS resource_id, 'project' AS resource_kind,
               'api_requests' AS meter, 'requests' AS sku,
               (hour AT TIME ZONE 'UTC')::date AS day, requests::numeric AS amount
          FROM usage_request_counts
         WHERE project_id = :project_id
           AND hour > CAST(:start AS timestamptz) - interval '1 hour'
           AND hour < CAST(:end AS timestamptz)
    """
    chosen = [_COLUMNS[d] for d in Dimension if d in dimensions]
    columns = [c for select_columns, _ in chosen for c in select_columns]
    group_by = ", ".join(c for _, group_columns in chosen for c in group_columns)
    summed_by = ", ".join(
        dict.fromkeys(c for d in Dimension if d in dimensions for c in _SUMMED_BY[d])
    )
    join = ""
    if Dimension.resource in dimensions:
        join = "LEFT JOIN resources r ON r.id = g.resource_id"
    statement = f"""
        WITH {_PRICED},
        usage AS ({" UNION ALL ".join([*pieces, rolled, requests])}),
        g AS (
            SELECT {", ".join([summed_by, ""]) if summed_by else ""}meter, sku,
                   sum(amount) AS amount
              FROM usage
             GROUP BY {", ".join([summed_by, ""]) if summed_by else ""}meter, sku
        )
        SELECT {", ".join([*columns, ""])}
               sum(g.amount) AS amount,
               sum(g.amount / mu.per_unit * coalesce(p.unit_price, 0)) AS cost_usd
          FROM g
          JOIN meter_units mu ON mu.meter = g.meter
          LEFT JOIN prices p ON p.meter = g.meter AND p.sku = g.sku
          {join}
         {f"GROUP BY {group_by} ORDER BY {group_by}" if group_by else ""}
    """  # noqa: S608 - columns come from the Dimension enum, values are bound
    params = {
        **window_params,
        "upto": window.upto,
        "project_id": project_id,
        "full_from": full_from,
        "full_to": full_to,
        "start": start,
        "end": end,
        **_price_params(prices),
    }
    return text(statement), params


async def report(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    window: Window,
    rolled_through: date | None,
    dimensions: Sequence[Dimension],
    prices: Sequence[Price],
    limit: int,
) -> list[ReportRow]:
    """Usage and cost in the window grouped by ``dimensions``: at most ``limit`` + 1
    rows, so callers can tell there are more."""
    statement, params = _report_query(
        project_id=project_id,
        window=window,
        rolled_through=rolled_through,
        dimensions=dimensions,
        prices=prices,
    )
    result = await session.execute(
        text(f"{statement.text} LIMIT :limit"), {**params, "limit": limit + 1}
    )
    # With no usage at all, the one ungrouped row sums nothing: no rows.
    return [ReportRow.of(row) for row in result.mappings() if row["amount"] is not None]


async def stream_report(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    window: Window,
    rolled_through: date | None,
    dimensions: Sequence[Dimension],
    prices: Sequence[Price],
) -> AsyncIterator[ReportRow]:
    """The whole report, read from a server-side cursor: never held in memory at once."""
    statement, params = _report_query(
        project_id=project_id,
        window=window,
        rolled_through=rolled_through,
        dimensions=dimensions,
        prices=prices,
    )
    result = await session.stream(statement, params)
    async for row in result.mappings():
        if row["amount"] is not None:
            yield ReportRow.of(row)


async def run_rate(
    session: AsyncSession, *, project_id: uuid.UUID, prices: Sequence[Price]
) -> Decimal:
    """What the project's running meters cost per second, right now."""
    value = await session.scalar(
        text(
            f"""
            WITH {_PRICED}
            SELECT coalesce(sum(s.quantity / mu.per_unit * coalesce(p.unit_price, 0)), 0)
              FROM usage_segments s
              JOIN meter_units mu ON mu.meter = s.meter
              LEFT JOIN prices p ON p.meter = s.meter AND p.sku = s.sku
             WHERE s.project_id = :project_id AND s.ended_at IS NULL
            """  # noqa: S608 - constant fragments only
        ),
        {"project_id": project_id, **_price_params(prices)},
    )
    return Decimal(value or 0)


async def rolled_through(session: AsyncSession) -> date | None:
    value = await session.scalar(text("SELECT rolled_through FROM usage_rollup_state"))
    return value if isinstance(value, date) else None


async def roll_up_batch(session: AsyncSession, *, now: datetime) -> date | None:
    """Rolls up to ``ROLLUP_BATCH_DAYS`` more whole days, in the caller's transaction;
    returns the new watermark, or None when there was nothing left to roll up. Concurrent
    runs queue on the state row, and a day is summed exactly once."""
    target = (now - ROLLUP_GRACE).astimezone(UTC).date()
    locked = text("SELECT rolled_through FROM usage_rollup_state FOR UPDATE")
    current = await session.scalar(locked)
    if current is None:  # the first run starts from the first segment
        await session.execute(
            text(
                "INSERT INTO usage_rollup_state (id, rolled_through) "
                "SELECT true, coalesce(min(started_at AT TIME ZONE 'UTC')::date, :target) "
                "FROM usage_segments ON CONFLICT (id) DO NOTHING"
            ),
            {"target": target},
        )
        current = await session.scalar(locked)
    assert isinstance(current, date)
    if current >= target:
        return None
    batch_end = min(current + timedelta(days=ROLLUP_BATCH_DAYS), target)
    [pieces], params = _pieces([(midnight(current), midnight(batch_end))], project_filter="")
    await session.execute(
        text(
            f"""
            INSERT INTO usage_daily
                (project_id, day, resource_id, resource_kind, meter, sku, amount)
            SELECT project_id, day, resource_id, resource_kind, meter, sku, sum(amount)
              FROM ({pieces}) pieces
             GROUP BY project_id, day, resource_id, resource_kind, meter, sku
            """  # noqa: S608 - constant fragments only
        ),
        {**params, "upto": now},
    )
    await session.execute(
        text("UPDATE usage_rollup_state SET rolled_through = :day"), {"day": batch_end}
    )
    return batch_end
