"""The e-mail channel of alerts: one job per address and state change, queued with the
change and sent by SMTP after it commits; a failure raises, and the job is retried
with backoff. Neither the password nor the message is ever logged."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.email import deliver
from lariba.core.settings import Settings
from lariba.monitoring.alerts.models import AlertRule, AlertStateChange
from lariba.monitoring.alerts.schemas import plain, source_out, window_out

log = structlog.get_logger(__name__)

EMAIL_TASK = "send_alert_email"


def _measured(rule: AlertRule) -> str:
    source = source_out(rule)
    window = window_out(rule)
    if source.type == "metric":
        return (
            f"{source.aggregate} of {source.metric} of resource {source.resource_id} over {window}"
        )
    if source.measure == "window":
        return f"the project's cost over the last {window} (USD)"
    return f"the project's {source.measure.replace('_', ' ')} cost (USD)"


def alert_message(
    settings: Settings, *, rule: AlertRule, change: AlertStateChange, to: str
) -> EmailMessage:
    triggered = change.to_state == "alerting"
    value = "no data" if change.value is None else str(plain(change.value))
    rule_url = f"{settings.base_url}/v1/projects/{rule.project_id}/alerts/{rule.id}"
    message = EmailMessage()
    message["Subject"] = f"[Lariba Cloud] {'ALERTING' if triggered else 'RESOLVED'}: {rule.name}"
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Date"] = format_datetime(change.at)
    message["Message-ID"] = make_msgid(domain="lariba")
    state = (
        "is alerting"
        if triggered
        else f"is no longer alerting (now {change.to_state.replace('_', ' ')})"
    )
    message.set_content(
        f"The alert rule {rule.name!r} {state} since {change.at.isoformat()}.\n\n"
        f"Measured: {_measured(rule)}\n"
        f"Value: {value}\n"
        f"Condition for alerting: value {rule.comparison} {plain(change.threshold)}\n\n"
        f"Project: {rule.project_id}\n"
        f"Rule: {rule_url}\n"
        f"History: {rule_url}/history\n"
    )
    return message


async def send_alert_email(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    change_id: int,
    recipient: int,
) -> bool:
    """Sends the e-mail of one state change to its ``recipient``-th address; returns
    whether one was sent. Raises when the SMTP server fails (the job is retried)."""
    if settings.smtp_host is None:
        log.warning("alert_email_not_configured", state_change_id=change_id)
        return False
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(AlertStateChange, AlertRule)
                .join(AlertRule, AlertRule.id == AlertStateChange.rule_id)
                .where(AlertStateChange.id == change_id)
            )
        ).one_or_none()
    if row is None or recipient >= len(row.AlertStateChange.emails):
        log.info("alert_email_dropped_rule_gone", state_change_id=change_id)
        return False
    change, rule = row.AlertStateChange, row.AlertRule
    message = alert_message(settings, rule=rule, change=change, to=change.emails[recipient])
    try:
        await asyncio.to_thread(deliver, settings, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("alert_email_failed", state_change_id=change_id, error_type=type(exc).__name__)
        raise
    log.info("alert_email_sent", state_change_id=change_id, alert_id=str(rule.id))
    return True
