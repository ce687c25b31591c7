"""Evaluating alert rules: measure each enabled rule's value, compare it with its
threshold, and on a change of state record it and notify, all in one transaction with
the rule's row lock held, so two evaluators never notify one change twice."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import procrastinate
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.cloud.engine.operations import database_now
from lariba.core.jobs import defer_in_transaction
from lariba.identity import audit
from lariba.monitoring.alerts.email import EMAIL_TASK
from lariba.monitoring.alerts.models import AlertRule, AlertStateChange
from lariba.monitoring.alerts.schemas import plain, source_out, window_out
from lariba.monitoring.metrics import repository as metrics
from lariba.monitoring.usage.repository import Window
from lariba.monitoring.usage.service import cost_report, forecast
from lariba.monitoring.webhooks.service import enqueue_event, event_payload
from lariba.providers.catalog import Catalog

log = structlog.get_logger(__name__)

TRIGGERED = "alert.triggered"
RESOLVED = "alert.resolved"
STATE_CHANGED = "alert.state_changed"
BATCH_SIZE = 100

_COMPARE: dict[str, Callable[[Decimal, Decimal], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


async def _metric_value(session: AsyncSession, rule: AlertRule, now: datetime) -> Decimal | None:
    """The aggregate of the samples in [now - window, now); None without any. The
    window is one step of the series, which may straddle two of its aligned buckets:
    they are merged from their min/max/sum/count, so the value is exact."""
    assert rule.resource_id is not None
    assert rule.metric
    assert rule.window_seconds
    window = timedelta(seconds=rule.window_seconds)
    buckets = await metrics.buckets(
        session,
        resource_id=rule.resource_id,
        name=rule.metric,
        start=now - window,
        end=now,
        step=window,
        hourly_before=None,
    )
    count = sum(b.count for b in buckets)
    if count == 0:
        return None
    total = sum(b.sum for b in buckets)
    value = {
        "avg": total / count,
        "sum": total,
        "count": float(count),
        "min": min(b.min for b in buckets),
        "max": max(b.max for b in buckets),
    }[rule.aggregate or "avg"]
    return Decimal(repr(float(value)))


async def _cost_value(
    session: AsyncSession, *, catalog: Catalog, rule: AlertRule, now: datetime
) -> Decimal:
    if rule.cost_measure == "window":
        assert rule.window_seconds
        start = now - timedelta(seconds=rule.window_seconds)
        report = await cost_report(
            session,
            catalog=catalog,
            project_id=rule.project_id,
            period=Window(start=start, end=now, upto=now),
            group_by=[],
        )
        return report.total_usd
    month = await forecast(session, catalog=catalog, project_id=rule.project_id, now=now)
    if rule.cost_measure == "end_of_month_forecast":
        return month.end_of_month_usd
    return month.month_to_date_usd


async def measure(
    session: AsyncSession, *, catalog: Catalog, rule: AlertRule, now: datetime
) -> Decimal | None:
    """The rule's value at ``now``; None when a metric has no samples in the window."""
    if rule.source_type == "metric":
        return await _metric_value(session, rule, now)
    return await _cost_value(session, catalog=catalog, rule=rule, now=now)


def state_of(rule: AlertRule, value: Decimal | None) -> str:
    if value is None:
        return "insufficient_data"
    return "alerting" if _COMPARE[rule.comparison](value, rule.threshold) else "ok"


def event_type(from_state: str, to_state: str) -> str | None:
    """What a change notifies: entering ``alerting`` triggers, leaving it resolves (to
    ``ok``, or to ``insufficient_data`` when the samples stop); changes between ``ok``
    and ``insufficient_data`` are only recorded."""
    if to_state == "alerting":
        return TRIGGERED
    if from_state == "alerting":
        return RESOLVED
    return None


def event_data(rule: AlertRule, change: AlertStateChange) -> dict[str, Any]:
    """``data`` of alert events: the rule, the states, the value and what it was
    compared with."""
    threshold = str(plain(change.threshold))
    window = window_out(rule)
    return {
        "alert": {
            "id": str(rule.id),
            "name": rule.name,
            "source": source_out(rule).model_dump(mode="json"),
            "comparison": rule.comparison,
            "threshold": threshold,
            "window": window,
        },
        "state": change.to_state,
        "previous_state": change.from_state,
        "value": str(plain(change.value)) if change.value is not None else None,
        "comparison": rule.comparison,
        "threshold": threshold,
        "window": window,
        "state_change_id": change.id,
    }


async def _record_change(
    session: AsyncSession,
    *,
    jobs: procrastinate.App,
    rule: AlertRule,
    to_state: str,
    value: Decimal | None,
    now: datetime,
) -> None:
    notifies = event_type(rule.state, to_state)
    change = AlertStateChange(
        rule_id=rule.id,
        project_id=rule.project_id,
        at=now,
        from_state=rule.state,
        to_state=to_state,
        value=value,
        threshold=rule.threshold,
        emails=rule.emails if notifies else [],
    )
    session.add(change)
    rule.state, rule.state_since = to_state, now
    await session.flush()
    data = event_data(rule, change)
    await audit.record(
        session,
        ctx=None,
        actor=audit.SYSTEM,
        action=notifies or STATE_CHANGED,
        target_type="alert",
        target_id=rule.id,
        project_id=rule.project_id,
        details=data,
    )
    if notifies is None:
        return
    await enqueue_event(
        session,
        project_id=rule.project_id,
        event_type=notifies,
        payload=event_payload(
            event_type=notifies, project_id=rule.project_id, data=data, occurred_at=now
        ),
    )
    # One job per address: a retry re-sends only the message that failed. The job
    # carries no address or text (procrastinate logs its arguments).
    for recipient in range(len(change.emails)):
        await defer_in_transaction(
            jobs, session, EMAIL_TASK, first=True, change_id=change.id, recipient=recipient
        )
    log.info(
        "alert_state_changed",
        alert_id=str(rule.id),
        from_state=change.from_state,
        to_state=to_state,
        emails=len(change.emails),
    )


async def evaluate_rule(
    session: AsyncSession,
    *,
    catalog: Catalog,
    jobs: procrastinate.App,
    rule: AlertRule,
    now: datetime,
) -> bool:
    """Evaluates one rule whose row lock the caller holds; returns whether its state
    changed."""
    value = await measure(session, catalog=catalog, rule=rule, now=now)
    to_state = state_of(rule, value)
    rule.last_value, rule.last_evaluated_at = value, now
    if to_state == rule.state:
        return False
    await _record_change(session, jobs=jobs, rule=rule, to_state=to_state, value=value, now=now)
    return True


async def evaluate_rules(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    catalog: Catalog,
    jobs: procrastinate.App,
    now: datetime | None = None,
) -> int:
    """Evaluates every enabled rule at ``now`` (default: the database's now), a batch per
    transaction; a rule another evaluator holds is skipped (it is being evaluated).
    ``jobs`` queues the e-mails. Returns the number of state changes."""
    changed = 0
    after: uuid.UUID | None = None
    while True:
        async with sessionmaker.begin() as session:
            statement = (
                select(AlertRule)
                .where(AlertRule.enabled)
                .order_by(AlertRule.id)
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
            if after is not None:
                statement = statement.where(AlertRule.id > after)
            rules = list(await session.scalars(statement))
            moment = now or await database_now(session)
            for rule in rules:
                try:
                    # A rule that fails to evaluate (a bug, a bad catalog) must not hold
                    # back the others: its savepoint is rolled back, the batch goes on.
                    async with session.begin_nested():
                        changed += await evaluate_rule(
                            session, catalog=catalog, jobs=jobs, rule=rule, now=moment
                        )
                except Exception as exc:
                    log.warning(
                        "alert_evaluation_failed",
                        alert_id=str(rule.id),
                        error_type=type(exc).__name__,
                    )
        if len(rules) < BATCH_SIZE:
            return changed
        after = rules[-1].id
