"""The worker's metric jobs: collecting samples every ``metrics_interval_minutes``, and
hourly, rolling whole hours up and purging what is past retention."""

from __future__ import annotations

import math
from datetime import timedelta

import procrastinate
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.cloud.engine.operations import database_now
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.jobs import TaskRegistrar
from lariba.core.settings import Settings
from lariba.monitoring.metrics import repository
from lariba.monitoring.metrics.collector import collect
from lariba.monitoring.metrics.repository import HOUR

log = structlog.get_logger(__name__)


def reroll(settings: Settings) -> timedelta:
    """Hours recomputed behind the watermark: CloudWatch datapoints are re-read, and may
    first arrive, up to ``metrics_aws_lookback_minutes`` after their time."""
    return HOUR * max(1, math.ceil(settings.metrics_aws_lookback_minutes / 60))


async def roll_up(sessionmaker: async_sessionmaker[AsyncSession], *, settings: Settings) -> int:
    """Rolls up every whole hour not yet rolled up, a batch per transaction; returns the
    number of batches."""
    batches = 0
    while True:
        async with sessionmaker.begin() as session:
            watermark = await repository.roll_up_batch(
                session, now=await database_now(session), reroll=reroll(settings)
            )
        if watermark is None:
            return batches
        batches += 1
        log.info("resource_metrics_rolled_up", through=watermark.isoformat())


async def purge(sessionmaker: async_sessionmaker[AsyncSession], *, settings: Settings) -> int:
    """Deletes raw samples past ``metrics_retention_days`` (never any the rollup has not
    aggregated yet) and hourly aggregates past ``metrics_hourly_retention_days``, in
    bounded batches; returns the rows deleted."""
    async with sessionmaker.begin() as session:
        now = await database_now(session)
        state = await repository.rollup_state(session)
        if state is None:
            return 0
        raw_before = min(
            now - timedelta(days=settings.metrics_retention_days),
            state.rolled_through - reroll(settings),
        )
        await repository.mark_raw_purged(session, before=raw_before)
    deleted = 0
    for table, column, before in (
        ("resource_metric_samples", "at", raw_before),
        (
            "resource_metric_hourly",
            "hour",
            now - timedelta(days=settings.metrics_hourly_retention_days),
        ),
    ):
        while True:
            async with sessionmaker.begin() as session:
                count = await repository.purge_batch(
                    session, table=table, column=column, before=before
                )
            deleted += count
            if count < repository.PURGE_BATCH_ROWS:
                break
    if deleted:
        log.info("resource_metrics_purged", rows=deleted)
    return deleted


def metrics_tasks(cloud: CloudRuntime) -> TaskRegistrar:
    settings = cloud.settings

    def register(app: procrastinate.App) -> None:
        # ``lock``: never two collections (or rollups) at once, on any worker; a slow one
        # delays the next rather than overlapping it.
        @app.periodic(
            cron=f"*/{settings.metrics_interval_minutes} * * * *",
            periodic_id="collect-resource-metrics",
        )
        @app.task(
            name="collect_resource_metrics",
            queueing_lock="collect_resource_metrics",
            lock="collect_resource_metrics",
        )
        async def collect_resource_metrics(timestamp: int) -> int:
            result = await collect(cloud, batch_size=settings.metrics_batch_size)
            log.info(
                "resource_metrics_collected",
                resources=result.resources,
                samples=result.samples,
                failures=result.failures,
            )
            return result.samples

        @app.periodic(cron="3 * * * *", periodic_id="roll-up-resource-metrics")
        @app.task(
            name="roll_up_resource_metrics",
            queueing_lock="roll_up_resource_metrics",
            lock="roll_up_resource_metrics",
        )
        async def roll_up_resource_metrics(timestamp: int) -> int:
            batches = await roll_up(cloud.sessionmaker, settings=settings)
            await purge(cloud.sessionmaker, settings=settings)
            return batches

    return register
