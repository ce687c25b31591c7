"""Usage and cost reports of a project, its end-of-month forecast, and the FinOps FOCUS
export."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.cloud.engine.operations import database_now
from lariba.core.errors import InvalidInput
from lariba.identity.models import Project
from lariba.monitoring.usage import repository
from lariba.monitoring.usage.meters import METERS, SECONDS_PER_HOUR, prices
from lariba.monitoring.usage.repository import Dimension, ReportRow, Window, midnight
from lariba.monitoring.usage.schemas import (
    CostItem,
    CostReport,
    Forecast,
    ResourceRef,
    UsageItem,
    UsageReport,
    rounded,
)
from lariba.providers.catalog import Catalog

# A JSON report stops here; the CSV export streams any size.
MAX_REPORT_ROWS = 10_000


def month_start(moment: datetime) -> datetime:
    return midnight(moment.astimezone(UTC).date().replace(day=1))


def next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


async def window(session: AsyncSession, *, start: datetime | None, end: datetime | None) -> Window:
    """The report's window: this UTC month so far unless given; times without an offset
    are UTC."""
    now = await database_now(session)
    start = _aware(start) if start is not None else month_start(now)
    end = _aware(end) if end is not None else now
    if start >= end:
        raise InvalidInput("from", "`from` must be earlier than `to`.", code="invalid_window")
    if start > now:
        raise InvalidInput("from", "`from` is in the future: there is no usage yet.")
    return Window(start=start, end=min(end, now), upto=now)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _report(
    session: AsyncSession,
    *,
    catalog: Catalog,
    project_id: uuid.UUID,
    period: Window,
    dimensions: Sequence[Dimension],
) -> list[ReportRow]:
    rows = await repository.report(
        session,
        project_id=project_id,
        window=period,
        rolled_through=await repository.rolled_through(session),
        dimensions=dimensions,
        prices=prices(catalog),
        limit=MAX_REPORT_ROWS,
    )
    if len(rows) > MAX_REPORT_ROWS:
        raise InvalidInput(
            "group_by",
            f"The report has more than {MAX_REPORT_ROWS} rows: choose a shorter window or "
            "fewer groups, or download the whole of it from the cost export (CSV).",
            code="report_too_large",
        )
    return rows


async def usage_report(
    session: AsyncSession,
    *,
    catalog: Catalog,
    project_id: uuid.UUID,
    period: Window,
    group_by: Sequence[Dimension],
) -> UsageReport:
    """Usage per meter and size, further grouped by ``group_by``."""
    dimensions = [*group_by, Dimension.meter]
    rows = await _report(
        session, catalog=catalog, project_id=project_id, period=period, dimensions=dimensions
    )
    items = []
    for row in rows:
        assert row.meter is not None
        assert row.sku is not None
        meter = METERS[row.meter]
        items.append(
            UsageItem(
                meter=row.meter,
                sku=row.sku,
                quantity=rounded(row.amount / meter.per_unit),
                unit=meter.unit,
                metered_quantity=rounded(row.amount),
                metered_unit=meter.metered_unit,
                cost_usd=rounded(row.cost_usd),
                day=row.day,
                resource=ResourceRef.of(row),
            )
        )
    return UsageReport(
        project_id=project_id,
        start=period.start,
        end=period.end,
        group_by=sorted(set(dimensions)),
        items=items,
    )


async def forecast(
    session: AsyncSession, *, catalog: Catalog, project_id: uuid.UUID, now: datetime
) -> Forecast:
    """Month to date, plus what the meters running now cost until the month ends."""
    start = month_start(now)
    rows = await _report(
        session,
        catalog=catalog,
        project_id=project_id,
        period=Window(start=start, end=now, upto=now),
        dimensions=[],
    )
    month_to_date = sum((row.cost_usd for row in rows), Decimal(0))
    per_second = await repository.run_rate(session, project_id=project_id, prices=prices(catalog))
    left = (midnight(next_month(start.date())) - now).total_seconds()
    return Forecast(
        month=start.strftime("%Y-%m"),
        month_to_date_usd=rounded(month_to_date),
        run_rate_usd_per_hour=rounded(per_second * SECONDS_PER_HOUR),
        end_of_month_usd=rounded(month_to_date + per_second * Decimal(left)),
    )


async def cost_report(
    session: AsyncSession,
    *,
    catalog: Catalog,
    project_id: uuid.UUID,
    period: Window,
    group_by: Sequence[Dimension],
) -> CostReport:
    rows = await _report(
        session, catalog=catalog, project_id=project_id, period=period, dimensions=group_by
    )
    return CostReport(
        project_id=project_id,
        start=period.start,
        end=period.end,
        group_by=sorted(set(group_by)),
        total_usd=rounded(sum((row.cost_usd for row in rows), Decimal(0))),
        items=[
            CostItem(
                cost_usd=rounded(row.cost_usd),
                day=row.day,
                resource=ResourceRef.of(row),
                resource_kind=row.resource_kind,
                meter=row.meter,
                sku=row.sku,
            )
            for row in rows
        ],
        forecast=await forecast(session, catalog=catalog, project_id=project_id, now=period.upto),
    )


# FinOps FOCUS 1.0 columns: one row per resource, meter and size, per UTC day.
FOCUS_COLUMNS = (
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
    "ServiceCategory",
    "ServiceName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "RegionId",
    "SkuId",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ListUnitPrice",
    "ListCost",
    "BilledCost",
    "EffectiveCost",
    "Tags",
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _focus_row(
    project: Project, period: Window, unit_prices: dict[tuple[str, str], Decimal], row: ReportRow
) -> list[str]:
    assert row.day is not None
    assert row.meter is not None
    assert row.sku is not None
    meter = METERS[row.meter]
    quantity = rounded(row.amount / meter.per_unit)
    cost = rounded(row.cost_usd)
    unit_price = unit_prices.get((row.meter, row.sku), Decimal(0))
    sized = row.meter in ("instance", "database")
    charge_start = max(midnight(row.day), period.start)
    charge_end = min(midnight(row.day + timedelta(days=1)), period.end)
    return [
        str(project.id),
        project.name,
        "USD",
        _iso(midnight(row.day.replace(day=1))),
        _iso(midnight(next_month(row.day))),
        _iso(charge_start),
        _iso(charge_end),
        "Usage",
        f"{meter.description}, size {row.sku}" if sized else meter.description,
        "Lariba Cloud",
        "Lariba Cloud",
        "Lariba Cloud",
        meter.service_category,
        meter.service_name,
        str(row.resource_id),
        row.resource_name or "",
        meter.resource_kind,
        row.region or "",
        f"{row.meter}:{row.sku}",
        str(quantity),
        meter.unit,
        str(quantity),
        meter.unit,
        str(unit_price),  # the catalog's, as given
        str(cost),
        str(cost),
        str(cost),
        json.dumps(row.labels or {}, sort_keys=True),
    ]


async def focus_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    catalog: Catalog,
    project: Project,
    period: Window,
) -> AsyncIterator[str]:
    """The window's usage and cost as CSV in FOCUS columns, streamed a row at a time from
    a session of its own (the response outlives the request's)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Sequence[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    catalog_prices = prices(catalog)
    unit_prices = {(p.meter, p.sku): p.unit_price_usd for p in catalog_prices}
    yield line(FOCUS_COLUMNS)
    async with sessionmaker() as session, session.begin():
        rows = repository.stream_report(
            session,
            project_id=project.id,
            window=period,
            rolled_through=await repository.rolled_through(session),
            dimensions=[Dimension.day, Dimension.resource, Dimension.meter],
            prices=catalog_prices,
        )
        async for row in rows:
            yield line(_focus_row(project, period, unit_prices, row))
