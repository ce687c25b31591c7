"""Use cases of alert rules: creating, reading, changing and deleting a project's rules,
and reading the history of their state changes. Evaluation is in ``evaluate``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import Conflict, InvalidInput, NotFound
from lariba.core.pagination import (
    Page,
    PageRequest,
    SequencePageRequest,
    fetch_page,
    fetch_page_newest_first,
)
from lariba.core.settings import Settings
from lariba.identity import audit
from lariba.identity.audit import Actor, RequestContext
from lariba.monitoring.alerts.models import AlertRule, AlertStateChange
from lariba.monitoring.alerts.schemas import (
    AlertRuleCreate,
    AlertRuleOut,
    AlertRuleUpdate,
    AlertStateChangeOut,
    CostSource,
    MetricSource,
    source_out,
    window_out,
)
from lariba.monitoring.metrics.definitions import metric, metrics_of
from lariba.monitoring.metrics.service import parse_step, project_resource

# Every rule is evaluated every minute: a bound keeps one project from making that slow.
MAX_RULES_PER_PROJECT = 100
MIN_WINDOW = timedelta(minutes=1)
# Raw samples are kept at least a day (metrics_retention_days >= 1), so a metric window
# never reaches back into the hourly aggregates.
MAX_METRIC_WINDOW = timedelta(hours=24)
MAX_COST_WINDOW = timedelta(days=31)


@dataclass(frozen=True)
class Caller:
    """Who changes the rules, for the audit log."""

    ctx: RequestContext
    actor: Actor


async def _get(
    session: AsyncSession, *, project_id: uuid.UUID, rule_id: uuid.UUID, lock: bool = False
) -> AlertRule:
    stmt = select(AlertRule).where(AlertRule.id == rule_id, AlertRule.project_id == project_id)
    rule = await session.scalar(stmt.with_for_update() if lock else stmt)
    if rule is None:
        raise NotFound(f"Alert rule {rule_id} not found.", code="alert_not_found")
    return rule


def _window(value: str | None, *, required: bool, longest: timedelta) -> int | None:
    if value is None:
        if required:
            raise InvalidInput(
                "window", "this source needs a window, such as 5m or 1h.", code="window_required"
            )
        return None
    if not required:
        raise InvalidInput(
            "window",
            "the month's cost measures cover the current UTC month; leave window out (or "
            "use the measure `window`).",
            code="window_not_used",
        )
    span = parse_step(value)
    if not MIN_WINDOW <= span <= longest:
        raise InvalidInput(
            "window",
            f"must be between {int(MIN_WINDOW.total_seconds())}s and "
            f"{int(longest.total_seconds())}s.",
            code="window_out_of_range",
        )
    return int(span.total_seconds())


async def _source_columns(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    source: MetricSource | CostSource,
    window: str | None,
) -> dict[str, Any]:
    """The rule's columns for ``source`` and ``window``, once both are checked: a metric
    of the project's resource and of its kind (another project's resource is 404)."""
    if isinstance(source, CostSource):
        return {
            "source_type": "cost",
            "resource_id": None,
            "metric": None,
            "aggregate": None,
            "cost_measure": source.measure,
            "window_seconds": _window(
                window, required=_uses_window(source), longest=MAX_COST_WINDOW
            ),
        }
    resource = await project_resource(
        session, project_id=project_id, resource_id=source.resource_id
    )
    found = metric(resource.kind, source.metric)
    if found is None:
        known = ", ".join(m.name for m in metrics_of(resource.kind)) or "none"
        raise InvalidInput(
            "source.metric",
            f"{resource.kind} resources have no metric {source.metric!r} (they have: {known}).",
            code="unknown_metric",
        )
    return {
        "source_type": "metric",
        "resource_id": resource.id,
        "metric": found.name,
        "aggregate": source.aggregate or found.aggregate,
        "cost_measure": None,
        "window_seconds": _window(window, required=True, longest=MAX_METRIC_WINDOW),
    }


def _source_in(rule: AlertRule) -> MetricSource | CostSource:
    current = source_out(rule).model_dump()
    if rule.source_type == "metric":
        return MetricSource.model_validate(current)
    return CostSource.model_validate(current)


def _uses_window(source: MetricSource | CostSource) -> bool:
    return isinstance(source, MetricSource) or source.measure == "window"


def _check_emails(settings: Settings, emails: list[str]) -> list[str]:
    if emails and settings.smtp_host is None:
        raise InvalidInput(
            "emails",
            "e-mail is not configured on this Lariba Cloud (LARIBA_SMTP_HOST): notify "
            "through a webhook instead, or ask the operator to configure SMTP.",
            code="email_not_configured",
        )
    return list(dict.fromkeys(emails))


async def _check_name(
    session: AsyncSession, *, project_id: uuid.UUID, name: str, other_than: uuid.UUID | None
) -> None:
    stmt = select(AlertRule.id).where(AlertRule.project_id == project_id, AlertRule.name == name)
    if other_than is not None:
        stmt = stmt.where(AlertRule.id != other_than)
    if await session.scalar(stmt) is not None:
        raise Conflict(
            f"The project already has an alert rule named {name!r}.", code="alert_name_taken"
        )


def _described(rule: AlertRule) -> dict[str, Any]:
    """The rule as the audit log keeps it."""
    return {
        "name": rule.name,
        "source": source_out(rule).model_dump(mode="json"),
        "comparison": rule.comparison,
        "threshold": str(rule.threshold),
        "window": window_out(rule),
        "enabled": rule.enabled,
        "emails": len(rule.emails),
    }


async def _audit(session: AsyncSession, caller: Caller, action: str, rule: AlertRule) -> None:
    await audit.record(
        session,
        ctx=caller.ctx,
        actor=caller.actor,
        action=action,
        target_type="alert",
        target_id=rule.id,
        project_id=rule.project_id,
        details=_described(rule),
    )


async def create_rule(
    session: AsyncSession,
    *,
    settings: Settings,
    caller: Caller,
    project_id: uuid.UUID,
    body: AlertRuleCreate,
) -> AlertRuleOut:
    count = await session.scalar(
        select(func.count()).select_from(AlertRule).where(AlertRule.project_id == project_id)
    )
    if (count or 0) >= MAX_RULES_PER_PROJECT:
        raise Conflict(
            f"A project has at most {MAX_RULES_PER_PROJECT} alert rules; delete one first.",
            code="alert_limit_reached",
        )
    columns = await _source_columns(
        session, project_id=project_id, source=body.source, window=body.window
    )
    emails = _check_emails(settings, [str(e) for e in body.emails])
    await _check_name(session, project_id=project_id, name=body.name, other_than=None)
    rule = AlertRule(
        id=uuid.uuid4(),
        project_id=project_id,
        name=body.name,
        comparison=body.comparison,
        threshold=body.threshold,
        enabled=body.enabled,
        emails=emails,
        **columns,
    )
    session.add(rule)
    await session.flush()
    await session.refresh(rule)
    await _audit(session, caller, "alert.create", rule)
    return AlertRuleOut.of(rule)


async def list_rules(
    session: AsyncSession, *, project_id: uuid.UUID, page: PageRequest
) -> Page[AlertRuleOut]:
    rows, next_cursor = await fetch_page(
        session,
        select(AlertRule).where(AlertRule.project_id == project_id),
        page=page,
        created_at=AlertRule.created_at,
        ident=AlertRule.id,
    )
    return Page(items=[AlertRuleOut.of(row[0]) for row in rows], next_cursor=next_cursor)


async def get_rule(
    session: AsyncSession, *, project_id: uuid.UUID, rule_id: uuid.UUID
) -> AlertRuleOut:
    return AlertRuleOut.of(await _get(session, project_id=project_id, rule_id=rule_id))


async def update_rule(
    session: AsyncSession,
    *,
    settings: Settings,
    caller: Caller,
    project_id: uuid.UUID,
    rule_id: uuid.UUID,
    body: AlertRuleUpdate,
) -> AlertRuleOut:
    """Changes the fields sent. The rule keeps its state: the next evaluation compares the
    new terms, and notifies if that changes the state."""
    rule = await _get(session, project_id=project_id, rule_id=rule_id, lock=True)
    sent = body.model_fields_set
    if "source" in sent or "window" in sent:
        source = body.source if body.source is not None else _source_in(rule)
        if "window" in sent:
            window = body.window
        else:  # a source that measures no window drops the old one
            window = window_out(rule) if _uses_window(source) else None
        columns = await _source_columns(
            session, project_id=project_id, source=source, window=window
        )
        for key, value in columns.items():
            setattr(rule, key, value)
    if body.name is not None and body.name != rule.name:
        await _check_name(session, project_id=project_id, name=body.name, other_than=rule.id)
        rule.name = body.name
    if body.comparison is not None:
        rule.comparison = body.comparison
    if body.threshold is not None:
        rule.threshold = body.threshold
    if body.enabled is not None:
        rule.enabled = body.enabled
    if body.emails is not None:
        rule.emails = _check_emails(settings, [str(e) for e in body.emails])
    await session.flush()
    await session.refresh(rule)
    await _audit(session, caller, "alert.update", rule)
    return AlertRuleOut.of(rule)


async def delete_rule(
    session: AsyncSession, *, caller: Caller, project_id: uuid.UUID, rule_id: uuid.UUID
) -> None:
    rule = await _get(session, project_id=project_id, rule_id=rule_id, lock=True)
    await _audit(session, caller, "alert.delete", rule)
    await session.delete(rule)
    await session.flush()


async def list_history(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    rule_id: uuid.UUID,
    page: SequencePageRequest,
) -> Page[AlertStateChangeOut]:
    """The rule's state changes, newest first."""
    await _get(session, project_id=project_id, rule_id=rule_id)
    rows, next_cursor = await fetch_page_newest_first(
        session,
        select(AlertStateChange).where(AlertStateChange.rule_id == rule_id),
        page=page,
        ident=AlertStateChange.id,
    )
    return Page(items=[AlertStateChangeOut.of(row[0]) for row in rows], next_cursor=next_cursor)
