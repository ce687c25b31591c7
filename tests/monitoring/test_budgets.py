"""Budgets: who may set them, the thresholds they notify once a month, and the new
resources they refuse once spent — before anything reaches the provider."""

from __future__ import annotations

import uuid
from decimal import ROUND_UP, Decimal
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.settings import Settings
from lariba.identity.models import AuditEvent
from lariba.monitoring.budgets.models import Budget
from lariba.monitoring.budgets.service import check_budgets
from lariba.monitoring.models import WebhookDelivery
from lariba.monitoring.usage.models import UsageSegment
from lariba.monitoring.usage.service import month_start
from lariba.providers.catalog import load_catalog
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.monitoring import Team


def budget_url(project_id: str) -> str:
    return f"/v1/projects/{project_id}/budget"


async def _spend_this_month(db: AsyncSession, project_id: str) -> None:
    """A closed stretch of a billion small instances since the month began: whatever the
    date, the month's cost is dollars, and stays put while the test runs."""
    now = await db.scalar(select(func.now()))
    assert now is not None
    db.add(
        UsageSegment(
            project_id=uuid.UUID(project_id),
            resource_id=uuid.uuid4(),
            resource_kind="instance",
            meter="instance",
            sku="small",
            quantity=Decimal(10**9),
            started_at=month_start(now),
            ended_at=now,
        )
    )
    await db.commit()


async def _month_to_date(client: httpx.AsyncClient, user: TestUser, project_id: str) -> Decimal:
    response = await client.get(f"/v1/projects/{project_id}/cost", headers=user.headers)
    assert response.status_code == 200, response.text
    return Decimal(response.json()["forecast"]["month_to_date_usd"])


async def test_admins_set_a_budget_viewers_read_it_members_may_not_change_it(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    url = budget_url(shop_team.project_id)
    missing = await client.get(url, headers=shop_team.viewer.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "budget_not_set"

    body = {"amount_usd": "250.00", "thresholds": [90, 50], "block_provisioning": True}
    refused = await client.put(url, json=body, headers=shop_team.member.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_role"

    saved = await client.put(url, json=body, headers=shop_team.admin.headers)
    assert saved.status_code == 200, saved.text
    out = saved.json()
    assert out["amount_usd"] == "250.00"
    assert out["thresholds"] == [50, 90]
    assert out["block_provisioning"] is True
    assert out["status"]["month_to_date_usd"] == "0.000000"
    assert out["status"]["thresholds_reached"] == []
    assert out["status"]["provisioning_blocked"] is False
    row = await db.scalar(
        select(Budget).where(Budget.project_id == uuid.UUID(shop_team.project_id))
    )
    assert row is not None
    assert (row.amount_usd, row.thresholds, row.block_provisioning) == (
        Decimal(250),
        [50, 90],
        True,
    )

    read = await client.get(url, headers=shop_team.viewer.headers)
    assert read.json() == out
    audit = await db.scalar(select(AuditEvent).where(AuditEvent.action == "budget.set"))
    assert audit is not None
    assert audit.actor_id == shop_team.admin.id

    assert (await client.delete(url, headers=shop_team.member.headers)).status_code == 403
    assert (await client.delete(url, headers=shop_team.owner.headers)).status_code == 204
    assert (await client.get(url, headers=shop_team.owner.headers)).status_code == 404
    db.expire_all()
    assert await db.scalar(select(func.count()).select_from(Budget)) == 0


async def test_bad_budgets_are_refused_with_the_field_named(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    url = budget_url((await create_project(client, alice))["id"])
    for body, field in (
        ({"amount_usd": "0"}, "amount_usd"),
        ({"amount_usd": "10.001"}, "amount_usd"),
        ({"amount_usd": "10", "thresholds": [50, 50]}, "thresholds"),
        ({"amount_usd": "10", "thresholds": [0]}, "thresholds"),
        ({"amount_usd": "10", "owner": "mallory"}, "owner"),
    ):
        response = await client.put(url, json=body, headers=alice.headers)
        assert response.status_code == 422, (body, response.text)
        assert field in response.text


async def test_each_threshold_is_notified_once_a_month(
    make_client: Any, db: AsyncSession, settings: Settings, test_database_url: str
) -> None:
    engine = create_engine(settings, test_database_url, pool_size=1)
    sessionmaker = create_sessionmaker(engine)
    catalog = load_catalog("local")
    async with make_client(webhook_allowed_networks="127.0.0.0/8") as client:
        alice = await sign_up(client)
        pid = (await create_project(client, alice))["id"]
        hook = await client.post(
            f"/v1/projects/{pid}/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["budget.*"]},
            headers=alice.headers,
        )
        assert hook.status_code == 201, hook.text
        await _spend_this_month(db, pid)
        spent = await _month_to_date(client, alice, pid)
        # 85 % of the budget spent: 50 and 80 are reached, 100 is not.
        amount = (spent / Decimal("0.85")).quantize(Decimal("0.01"), rounding=ROUND_UP)
        saved = await client.put(
            budget_url(pid), json={"amount_usd": str(amount)}, headers=alice.headers
        )
        assert saved.json()["status"]["thresholds_reached"] == [50, 80]

        first = await check_budgets(sessionmaker, catalog=catalog)
        again = await check_budgets(sessionmaker, catalog=catalog)
        assert (first, again) == (2, 0)

        deliveries = list(
            await db.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.event_type == "budget.threshold_crossed")
                .order_by(WebhookDelivery.seq)
            )
        )
        assert [d.payload["data"]["threshold_percent"] for d in deliveries] == [50, 80]
        data = deliveries[0].payload["data"]
        assert data["amount_usd"] == str(amount)
        assert data["month_to_date_usd"] == str(spent)
        assert data["provisioning_blocked"] is False
        audits = await db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "budget.threshold_crossed")
        )
        assert audits == 2
        budget = await db.scalar(select(Budget).where(Budget.project_id == uuid.UUID(pid)))
        assert budget is not None
        assert budget.notified == [50, 80]

        # Last month's notifications do not count this month.
        await db.execute(
            text("UPDATE budgets SET notified_month = '1999-12' WHERE project_id = :p"),
            {"p": uuid.UUID(pid)},
        )
        await db.commit()
        assert await check_budgets(sessionmaker, catalog=catalog) == 2
    await engine.dispose()


async def test_a_spent_blocking_budget_refuses_new_resources_before_the_provider(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    await _spend_this_month(db, pid)
    spent = await _month_to_date(client, alice, pid)
    buckets = f"/v1/projects/{pid}/buckets"
    half = str((spent / 2).quantize(Decimal("0.01")))

    saved = await client.put(budget_url(pid), json={"amount_usd": half}, headers=alice.headers)
    assert saved.status_code == 200, saved.text
    allowed = await client.post(
        buckets, json={"name": f"b-{uuid.uuid4().hex[:8]}"}, headers=alice.headers
    )
    assert allowed.status_code == 202, allowed.text  # spent, but not blocking

    blocking = await client.put(
        budget_url(pid),
        json={"amount_usd": half, "block_provisioning": True},
        headers=alice.headers,
    )
    assert blocking.status_code == 200, blocking.text
    before = await db.scalar(select(func.count()).select_from(Resource))
    refused = await client.post(
        buckets, json={"name": f"b-{uuid.uuid4().hex[:8]}"}, headers=alice.headers
    )
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["code"] == "budget_exceeded"
    assert "budget" in problem["detail"]
    assert Decimal(problem["month_to_date_usd"]) == spent
    assert await db.scalar(select(func.count()).select_from(Resource)) == before

    status = (await client.get(budget_url(pid), headers=alice.headers)).json()["status"]
    assert status["provisioning_blocked"] is True
    assert status["thresholds_reached"] == [50, 80, 100]
