"""Background jobs of the audit and logs endpoints."""

from __future__ import annotations

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.jobs import TaskRegistrar
from lariba.core.settings import Settings
from lariba.monitoring.audit.server_errors import purge_server_errors


def server_error_tasks(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> TaskRegistrar:
    """The hourly purge of server errors past their retention, a batch per run."""

    def register(app: procrastinate.App) -> None:
        @app.periodic(cron="23 * * * *", periodic_id="purge-server-errors")
        @app.task(name="purge_server_errors", queueing_lock="purge_server_errors")
        async def purge_expired_server_errors(timestamp: int) -> int:
            async with sessionmaker.begin() as session:
                return await purge_server_errors(
                    session, older_than_days=settings.server_error_retention_days
                )

    return register
