"""The hourly rollup of whole past days into ``usage_daily``."""

from __future__ import annotations

import procrastinate
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.cloud.engine.operations import database_now
from lariba.core.jobs import TaskRegistrar
from lariba.monitoring.usage import repository

log = structlog.get_logger(__name__)


async def roll_up(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Rolls up every whole day not yet rolled up, a batch per transaction; returns the
    number of batches."""
    batches = 0
    while True:
        async with sessionmaker.begin() as session:
            watermark = await repository.roll_up_batch(session, now=await database_now(session))
        if watermark is None:
            return batches
        batches += 1
        log.info("usage_rolled_up", through=watermark.isoformat())


def usage_tasks(sessionmaker: async_sessionmaker[AsyncSession]) -> TaskRegistrar:
    def register(app: procrastinate.App) -> None:
        @app.periodic(cron="7 * * * *", periodic_id="roll-up-usage")
        @app.task(name="roll_up_usage", queueing_lock="roll_up_usage")
        async def roll_up_usage(timestamp: int) -> int:
            return await roll_up(sessionmaker)

    return register
