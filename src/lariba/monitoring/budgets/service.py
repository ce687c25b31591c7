"""Budgets: set, read and remove them; the check that refuses new resources once a
blocking budget is spent; and the periodic check that notifies crossed thresholds."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.cloud.engine.operations import database_now
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.errors import Forbidden, NotFound
from lariba.identity import audit
from lariba.identity.audit import RequestContext
from lariba.identity.authz import ProjectAccess
from lariba.monitoring.budgets.models import Budget
from lariba.monitoring.budgets.schemas import BudgetIn, BudgetOut, BudgetStatus
from lariba.monitoring.usage.schemas import Forecast
from lariba.monitoring.usage.service import forecast
from lariba.monitoring.webhooks.service import enqueue_event, event_payload
from lariba.providers.catalog import Catalog

log = structlog.get_logger(__name__)

THRESHOLD_EVENT = "budget.threshold_crossed"
# Backups are never refused: a budget must not stop a database's final snapshot.
UNBLOCKED_KINDS = frozenset({"database_snapshot"})
CHECK_BATCH = 100


def _reached(budget: Budget, spent: Decimal) -> list[int]:
    return [t for t in budget.thresholds if spent * 100 >= budget.amount_usd * t]


def _status(budget: Budget, month: Forecast) -> BudgetStatus:
    spent = month.month_to_date_usd
    return BudgetStatus(
        month=month.month,
        month_to_date_usd=spent,
        end_of_month_usd=month.end_of_month_usd,
        percent_used=(spent * 100 / budget.amount_usd).quantize(Decimal("0.01")),
        thresholds_reached=_reached(budget, spent),
        provisioning_blocked=budget.block_provisioning and spent >= budget.amount_usd,
    )


async def _budget(session: AsyncSession, project_id: uuid.UUID, *, lock: bool = False) -> Budget:
    statement = select(Budget).where(Budget.project_id == project_id)
    budget = await session.scalar(statement.with_for_update() if lock else statement)
    if budget is None:
        raise NotFound("The project has no budget; set one with PUT.", code="budget_not_set")
    return budget


async def _out(session: AsyncSession, *, catalog: Catalog, budget: Budget) -> BudgetOut:
    month = await forecast(
        session, catalog=catalog, project_id=budget.project_id, now=await database_now(session)
    )
    return BudgetOut(
        amount_usd=budget.amount_usd,
        thresholds=budget.thresholds,
        block_provisioning=budget.block_provisioning,
        status=_status(budget, month),
    )


async def get_budget(
    session: AsyncSession, *, catalog: Catalog, project_id: uuid.UUID
) -> BudgetOut:
    return await _out(session, catalog=catalog, budget=await _budget(session, project_id))


async def set_budget(
    session: AsyncSession,
    *,
    catalog: Catalog,
    access: ProjectAccess,
    ctx: RequestContext,
    body: BudgetIn,
) -> BudgetOut:
    """Creates or replaces the project's budget. Thresholds already notified this month
    stay notified."""
    values = body.model_dump()
    await session.execute(
        insert(Budget)
        .values(project_id=access.project.id, **values)
        .on_conflict_do_update(index_elements=[Budget.project_id], set_=values)
    )
    await audit.record(
        session,
        ctx=ctx,
        actor=access.principal.actor,
        action="budget.set",
        target_type="budget",
        target_id=access.project.id,
        project_id=access.project.id,
        details={k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()},
    )
    budget = await _budget(session, access.project.id)
    await session.refresh(budget)
    return await _out(session, catalog=catalog, budget=budget)


async def delete_budget(
    session: AsyncSession, *, access: ProjectAccess, ctx: RequestContext
) -> None:
    deleted = await session.execute(
        delete(Budget).where(Budget.project_id == access.project.id).returning(Budget.project_id)
    )
    if deleted.scalar_one_or_none() is None:
        raise NotFound("The project has no budget.", code="budget_not_set")
    await audit.record(
        session,
        ctx=ctx,
        actor=access.principal.actor,
        action="budget.delete",
        target_type="budget",
        target_id=access.project.id,
        project_id=access.project.id,
    )


class BudgetExceeded(Forbidden):
    def __init__(self, budget: Budget, spent: Decimal) -> None:
        super().__init__(
            f"The project's cost this month (${spent}) has reached its budget "
            f"(${budget.amount_usd}), which blocks new resources. Raise the budget or turn "
            "off block_provisioning (PUT /v1/projects/{project_id}/budget), or wait for the "
            "next month.",
            code="budget_exceeded",
            extra={"amount_usd": str(budget.amount_usd), "month_to_date_usd": str(spent)},
        )


async def refuse_if_spent(
    session: AsyncSession, cloud: CloudRuntime, project_id: uuid.UUID, kind: str
) -> None:
    """The engine's admission check: a blocking budget that is spent refuses the new
    resource before anything reaches the provider."""
    if kind in UNBLOCKED_KINDS:
        return
    budget = await session.scalar(
        select(Budget).where(Budget.project_id == project_id, Budget.block_provisioning)
    )
    if budget is None:
        return
    month = await forecast(
        session, catalog=cloud.catalog, project_id=project_id, now=await database_now(session)
    )
    if month.month_to_date_usd >= budget.amount_usd:
        raise BudgetExceeded(budget, month.month_to_date_usd)


async def notify_thresholds(
    session: AsyncSession, *, catalog: Catalog, budget: Budget, now: datetime
) -> list[int]:
    """Queues one ``budget.threshold_crossed`` event (webhooks, audit) per threshold the
    month's cost has reached and that was not notified this month; returns them. The
    caller holds the budget's row lock, so each is notified once."""
    month = await forecast(session, catalog=catalog, project_id=budget.project_id, now=now)
    if budget.notified_month != month.month:
        budget.notified_month, budget.notified = month.month, []
    status = _status(budget, month)
    crossed = [t for t in status.thresholds_reached if t not in budget.notified]
    for threshold in crossed:
        data = {
            "threshold_percent": threshold,
            "amount_usd": str(budget.amount_usd),
            "month": month.month,
            "month_to_date_usd": str(month.month_to_date_usd),
            "end_of_month_usd": str(month.end_of_month_usd),
            "percent_used": str(status.percent_used),
            "provisioning_blocked": status.provisioning_blocked,
        }
        await enqueue_event(
            session,
            project_id=budget.project_id,
            event_type=THRESHOLD_EVENT,
            payload=event_payload(
                event_type=THRESHOLD_EVENT, project_id=budget.project_id, data=data, occurred_at=now
            ),
        )
        await audit.record(
            session,
            ctx=None,
            actor=audit.SYSTEM,
            action=THRESHOLD_EVENT,
            target_type="budget",
            target_id=budget.project_id,
            project_id=budget.project_id,
            details=data,
        )
    if crossed:
        budget.notified = sorted({*budget.notified, *crossed})
        log.info("budget_thresholds_crossed", project_id=str(budget.project_id), crossed=crossed)
    return crossed


async def check_budgets(sessionmaker: async_sessionmaker[AsyncSession], *, catalog: Catalog) -> int:
    """Checks every budget, a batch per transaction; a budget another worker is checking
    is skipped (it is being notified). Returns the number of thresholds notified."""
    notified = 0
    after: uuid.UUID | None = None
    while True:
        async with sessionmaker.begin() as session:
            statement = (
                select(Budget)
                .order_by(Budget.project_id)
                .limit(CHECK_BATCH)
                .with_for_update(skip_locked=True)
            )
            if after is not None:
                statement = statement.where(Budget.project_id > after)
            budgets = list(await session.scalars(statement))
            now = await database_now(session)
            for budget in budgets:
                notified += len(
                    await notify_thresholds(session, catalog=catalog, budget=budget, now=now)
                )
        if len(budgets) < CHECK_BATCH:
            return notified
        after = budgets[-1].project_id
