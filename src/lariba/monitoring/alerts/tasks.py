"""The worker's alert jobs: evaluating every enabled rule every
``alerts_interval_minutes``, and sending each queued alert e-mail."""

from __future__ import annotations

import procrastinate
from procrastinate import JobContext

from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.jobs import TaskRegistrar
from lariba.monitoring.alerts.email import EMAIL_TASK, send_alert_email
from lariba.monitoring.alerts.evaluate import evaluate_rules


def alert_tasks(cloud: CloudRuntime) -> TaskRegistrar:
    settings = cloud.settings

    def register(app: procrastinate.App) -> None:
        @app.periodic(
            cron=f"*/{settings.alerts_interval_minutes} * * * *",
            periodic_id="evaluate-alert-rules",
        )
        @app.task(
            name="evaluate_alert_rules", queueing_lock="evaluate_alert_rules", pass_context=True
        )
        async def evaluate_alert_rules(context: JobContext, timestamp: int) -> int:
            return await evaluate_rules(cloud.sessionmaker, catalog=cloud.catalog, jobs=context.app)

        @app.task(
            name=EMAIL_TASK,
            # Retried after 4 s, 16 s, 64 s, 4 min and 17 min: an SMTP server down for a
            # restart or a short outage still gets the message.
            retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=4),
        )
        async def send_alert_email_task(change_id: int, recipient: int) -> bool:
            return await send_alert_email(
                cloud.sessionmaker, settings, change_id=change_id, recipient=recipient
            )

    return register
