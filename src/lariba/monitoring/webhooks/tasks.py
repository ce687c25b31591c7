"""The background work of webhooks: the sender, queued by every new delivery (see the
0011 migration) and by each planned retry, and a per-minute backstop."""

from __future__ import annotations

import procrastinate
from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.jobs import TaskRegistrar
from lariba.core.secrets import SecretBox
from lariba.core.settings import Settings
from lariba.monitoring.webhooks.delivery import SEND_TASK, WebhookSender


def webhook_tasks(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> TaskRegistrar:
    previous = settings.secret_key_previous
    boxes = [SecretBox(settings.master_key)]
    if previous is not None:
        boxes.append(SecretBox(previous.get_secret_value().encode()))
    sender = WebhookSender(settings, sessionmaker=sessionmaker, boxes=boxes)

    def register(app: procrastinate.App) -> None:
        @app.task(
            name=SEND_TASK,
            pass_context=True,
            # Only unexpected failures (database away, a bug) reach procrastinate's retry;
            # a receiver's failure is an attempt in the delivery log.
            retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=2),
        )
        async def send_webhook_deliveries(context: JobContext) -> int:
            return await sender.run(context.app)

        @app.periodic(cron="* * * * *", periodic_id="resend-due-webhook-deliveries")
        @app.task(
            name="resend_due_webhook_deliveries",
            queueing_lock="resend_due_webhook_deliveries",
            pass_context=True,
        )
        async def resend_due_webhook_deliveries(context: JobContext, timestamp: int) -> int:
            """Sends what a lost job or a dead worker left due."""
            return await sender.run(context.app)

    return register
