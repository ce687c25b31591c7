"""The periodic budget check."""

from __future__ import annotations

import procrastinate

from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.jobs import TaskRegistrar
from lariba.monitoring.budgets.service import check_budgets


def budget_tasks(cloud: CloudRuntime) -> TaskRegistrar:
    def register(app: procrastinate.App) -> None:
        @app.periodic(cron="* * * * *", periodic_id="check-budgets")
        @app.task(name="check_budgets", queueing_lock="check_budgets")
        async def check_budgets_task(timestamp: int) -> int:
            return await check_budgets(cloud.sessionmaker, catalog=cloud.catalog)

    return register
