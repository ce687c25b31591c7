"""The metering trigger and the usage report's arithmetic, at the database level: segments
open and close with the resource's state, never overlap, and reports sum them exactly
with or without rollups."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.core.db import create_engine
from lariba.core.settings import Settings
from lariba.monitoring.usage import repository
from lariba.monitoring.usage.meters import GIB, Price
from lariba.monitoring.usage.models import UsageDaily, UsageSegment
from lariba.monitoring.usage.repository import Dimension, Window
from tests.fixtures.identity import TestUser, create_project

PRICES = [
    Price("instance", "small", Decimal("0.004")),
    Price("bucket_storage", "bytes", Decimal("0.02")),
]


async def _project(client: httpx.AsyncClient, alice: TestUser) -> uuid.UUID:
    return uuid.UUID((await create_project(client, alice))["id"])


async def _resource(db: AsyncSession, project_id: uuid.UUID, **fields: Any) -> Resource:
    defaults = {
        "name": f"r-{uuid.uuid4().hex[:6]}",
        "region": "local",
        "provider": "local",
        "desired_state": "running",
        "status": "pending",
    }
    resource = Resource(project_id=project_id, **{**defaults, **fields})
    db.add(resource)
    await db.commit()
    return resource


async def _update(db: AsyncSession, resource: Resource, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(resource, name, value)
    await db.commit()


async def _segments(db: AsyncSession, resource_id: uuid.UUID) -> list[UsageSegment]:
    rows = await db.scalars(
        select(UsageSegment)
        .where(UsageSegment.resource_id == resource_id)
        .order_by(UsageSegment.started_at, UsageSegment.id)
    )
    return list(rows)


async def test_an_instance_is_metered_while_running_by_size(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project_id = await _project(client, alice)
    instance = await _resource(db, project_id, kind="instance", spec={"size": "small"})
    assert await _segments(db, instance.id) == []

    await _update(db, instance, status="provisioning")
    assert await _segments(db, instance.id) == []
    await _update(db, instance, status="running")
    await _update(db, instance, spec={"size": "medium"})
    await _update(db, instance, status="stopping")
    await _update(db, instance, status="stopped")

    segments = await _segments(db, instance.id)
    assert [(s.meter, s.sku, s.quantity) for s in segments] == [
        ("instance", "small", Decimal(1)),
        ("instance", "medium", Decimal(1)),
    ]
    assert all(s.ended_at is not None and s.ended_at > s.started_at for s in segments)
    assert segments[0].ended_at == segments[1].started_at


async def test_a_bucket_is_metered_by_the_bytes_it_holds(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project_id = await _project(client, alice)
    bucket = await _resource(
        db, project_id, kind="bucket", spec={}, status="available", usage={"storage_bytes": 0}
    )
    assert await _segments(db, bucket.id) == []
    await _update(db, bucket, usage={"storage_bytes": 100})
    await _update(db, bucket, usage={"storage_bytes": 250})
    await _update(db, bucket, usage={"storage_bytes": 0})
    await _update(db, bucket, usage={"storage_bytes": 5})
    await _update(db, bucket, status="deleted")

    segments = await _segments(db, bucket.id)
    assert [(s.meter, s.quantity, s.ended_at is not None) for s in segments] == [
        ("bucket_storage", Decimal(100), True),
        ("bucket_storage", Decimal(250), True),
        ("bucket_storage", Decimal(5), True),
    ]


async def test_a_database_meters_its_size_and_storage(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project_id = await _project(client, alice)
    database = await _resource(
        db, project_id, kind="database", spec={"size": "small", "storage_gb": 20}
    )
    await _update(db, database, status="available")
    await _update(db, database, status="modifying", spec={"size": "small", "storage_gb": 30})
    await _update(db, database, status="available")
    await _update(db, database, status="deleting")

    segments = await _segments(db, database.id)
    assert sorted((s.meter, s.sku, s.quantity) for s in segments) == [
        ("database", "small", Decimal(1)),
        ("database_storage", "gib", Decimal(20)),
        ("database_storage", "gib", Decimal(30)),
    ]
    assert all(s.ended_at is not None for s in segments)


async def test_changes_from_older_transactions_never_overlap_segments(
    client: httpx.AsyncClient,
    alice: TestUser,
    db: AsyncSession,
    settings: Settings,
    test_database_url: str,
) -> None:
    """A transaction that began before other changes committed (an API request racing a
    worker) writes after them: its segment starts where the last one ended."""
    project_id = await _project(client, alice)
    instance = await _resource(db, project_id, kind="instance", spec={"size": "small"})
    instance_id = instance.id
    engine: AsyncEngine = create_engine(settings, test_database_url, pool_size=2)
    try:
        async with engine.connect() as late:
            late_tx = await late.begin()
            began = await late.scalar(text("SELECT now()"))
            await _update(db, instance, status="running")
            await _update(db, instance, status="stopped")
            await late.execute(
                text("UPDATE resources SET status = 'running' WHERE id = :id"),
                {"id": instance_id},
            )
            await late_tx.commit()
            async with engine.connect() as later, later.begin():
                await later.execute(
                    text("UPDATE resources SET status = 'stopped' WHERE id = :id"),
                    {"id": instance_id},
                )
    finally:
        await engine.dispose()

    db.expire_all()
    segments = await _segments(db, instance_id)
    assert len(segments) == 2
    first, second = segments
    assert first.ended_at is not None and second.ended_at is not None
    assert began < first.started_at
    assert second.started_at == first.ended_at
    assert second.ended_at > second.started_at


async def _insert_segment(
    db: AsyncSession,
    project_id: uuid.UUID,
    *,
    meter: str,
    sku: str,
    quantity: int,
    start: datetime,
    end: datetime | None,
    resource_id: uuid.UUID | None = None,
) -> uuid.UUID:
    resource_id = resource_id or uuid.uuid4()
    db.add(
        UsageSegment(
            project_id=project_id,
            resource_id=resource_id,
            resource_kind="instance" if meter == "instance" else "bucket",
            meter=meter,
            sku=sku,
            quantity=Decimal(quantity),
            started_at=start,
            ended_at=end,
        )
    )
    await db.commit()
    return resource_id


def _at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


async def test_reports_cut_segments_at_utc_midnight_and_rollups_agree(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project_id = await _project(client, alice)
    instance_id = await _insert_segment(
        db, project_id, meter="instance", sku="small", quantity=1, start=_at(1, 22), end=_at(3, 2)
    )
    bucket_id = await _insert_segment(
        db, project_id, meter="bucket_storage", sku="bytes", quantity=GIB, start=_at(2), end=None
    )

    async def by_day(rolled_through: date | None) -> dict[tuple[Any, ...], Decimal]:
        rows = await repository.report(
            db,
            project_id=project_id,
            window=Window(start=_at(1), end=_at(4), upto=_at(10)),
            rolled_through=rolled_through,
            dimensions=[Dimension.day, Dimension.resource, Dimension.meter],
            prices=PRICES,
            limit=100,
        )
        return {(r.day, r.resource_id, r.meter): r.amount for r in rows}

    expected = {
        (date(2026, 1, 1), instance_id, "instance"): Decimal(2 * 3600),
        (date(2026, 1, 2), instance_id, "instance"): Decimal(24 * 3600),
        (date(2026, 1, 3), instance_id, "instance"): Decimal(2 * 3600),
        (date(2026, 1, 2), bucket_id, "bucket_storage"): Decimal(86400 * GIB),
        (date(2026, 1, 3), bucket_id, "bucket_storage"): Decimal(86400 * GIB),
    }
    assert await by_day(None) == expected

    watermark = await repository.roll_up_batch(db, now=_at(10, 3))
    await db.commit()
    assert watermark == date(2026, 1, 10)
    assert await repository.roll_up_batch(db, now=_at(10, 3)) is None
    daily = await db.scalar(select(UsageDaily.amount).where(UsageDaily.day == date(2026, 1, 5)))
    assert daily == Decimal(86400 * GIB)
    assert await by_day(watermark) == expected

    total = await repository.report(
        db,
        project_id=project_id,
        window=Window(start=_at(1, 12), end=_at(9, 12), upto=_at(10)),
        rolled_through=watermark,
        dimensions=[],
        prices=PRICES,
        limit=1,
    )
    assert len(total) == 1
    # 28 instance-hours at 0.004, and 1 GiB for 7.5 days at 0.02 a GiB-month (730 h).
    expected_cost = Decimal(28) * Decimal("0.004") + Decimal(180) / 730 * Decimal("0.02")
    assert abs(total[0].cost_usd - expected_cost) < Decimal("1e-12")


async def test_a_project_with_no_usage_reports_nothing(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project_id = await _project(client, alice)
    rows = await repository.report(
        db,
        project_id=project_id,
        window=Window(start=_at(1), end=_at(2), upto=_at(3)),
        rolled_through=None,
        dimensions=[],
        prices=PRICES,
        limit=1,
    )
    assert rows == []
    assert await repository.run_rate(db, project_id=project_id, prices=PRICES) == 0
