"""Alert rules: who may manage them and what is refused; a metric rule crossing its
threshold delivers a signed `alert.triggered` webhook to a receiver on 127.0.0.1 and an
`alert.resolved` one when it returns, once however many evaluators run; cost rules; and
the e-mail channel against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.settings import Settings
from lariba.identity.models import AuditEvent
from lariba.monitoring.alerts.evaluate import evaluate_rules
from lariba.monitoring.alerts.models import AlertRule, AlertStateChange
from lariba.monitoring.metrics.models import MetricSample
from lariba.monitoring.models import WebhookDelivery
from lariba.monitoring.usage.models import UsageSegment
from lariba.monitoring.usage.service import month_start
from tests.fixtures.cloud import cloud_app, cloud_settings
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.monitoring import Team, add_resource
from tests.monitoring.test_webhooks import (
    FAST_WEBHOOKS,
    make_webhook,
    running_receiver,
    verify,
    wait_for,
)


def alerts_url(project_id: object, *parts: str) -> str:
    return "/".join([f"/v1/projects/{project_id}/alerts", *parts])


def cpu_rule(resource_id: object, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "cpu high",
        "source": {"type": "metric", "resource_id": str(resource_id), "metric": "cpu_percent"},
        "comparison": ">",
        "threshold": "80",
        "window": "5m",
        **overrides,
    }


async def db_now(db: AsyncSession) -> datetime:
    now = await db.scalar(select(func.now()))
    assert isinstance(now, datetime)
    return now


async def set_cpu(db: AsyncSession, resource_id: uuid.UUID, values: list[float]) -> None:
    """Replaces the resource's CPU samples by ``values``, one a minute, the last a
    minute ago: all of them inside a 5-minute window ending now."""
    now = await db_now(db)
    await db.execute(delete(MetricSample).where(MetricSample.resource_id == resource_id))
    db.add_all(
        MetricSample(
            resource_id=resource_id,
            name="cpu_percent",
            at=now - timedelta(minutes=len(values) - i),
            value=value,
        )
        for i, value in enumerate(values)
    )
    await db.commit()


async def spend_this_month(db: AsyncSession, project_id: str) -> None:
    """A closed stretch of a billion small instances since the month began (as the
    budget tests do): the month's cost is above zero, and stays put."""
    now = await db_now(db)
    db.add(
        UsageSegment(
            project_id=uuid.UUID(project_id),
            resource_id=uuid.uuid4(),
            resource_kind="instance",
            meter="instance",
            sku="small",
            quantity=Decimal(10**9),
            started_at=month_start(now) - timedelta(days=1),
            ended_at=now,
        )
    )
    await db.commit()


async def history(
    client: httpx.AsyncClient, user: TestUser, project_id: str, rule_id: str
) -> list[dict[str, Any]]:
    response = await client.get(alerts_url(project_id, rule_id, "history"), headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- managing rules ------------------------------------------------------------------


async def test_admins_write_viewers_read_members_are_403_strangers_404(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    pid = shop_team.project_id
    server = await add_resource(db, project_id=pid, name="web-1")
    body = cpu_rule(server.id, emails=[])

    refused = await client.post(alerts_url(pid), json=body, headers=shop_team.member.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_role"
    as_viewer = await client.post(alerts_url(pid), json=body, headers=shop_team.viewer.headers)
    assert as_viewer.status_code == 403

    created = await client.post(alerts_url(pid), json=body, headers=shop_team.admin.headers)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["source"] == {
        "type": "metric",
        "resource_id": str(server.id),
        "metric": "cpu_percent",
        "aggregate": "avg",  # the metric's default
    }
    assert (rule["comparison"], rule["threshold"], rule["window"]) == (">", "80", "5m")
    assert (rule["state"], rule["last_value"], rule["last_evaluated_at"]) == (
        "insufficient_data",
        None,
        None,
    )
    assert rule["enabled"] is True and rule["emails"] == []
    row = await db.get(AlertRule, uuid.UUID(rule["id"]))
    assert row is not None
    assert (row.resource_id, row.metric, row.window_seconds, row.threshold) == (
        server.id,
        "cpu_percent",
        300,
        Decimal(80),
    )

    listed = await client.get(alerts_url(pid), headers=shop_team.viewer.headers)
    assert listed.status_code == 200
    assert listed.json() == {"items": [rule], "next_cursor": None}
    got = await client.get(alerts_url(pid, rule["id"]), headers=shop_team.viewer.headers)
    assert got.json() == rule
    assert await history(client, shop_team.viewer, pid, rule["id"]) == []

    # Another tenant sees nothing, and cannot point a rule at this project's resource.
    for url in (
        alerts_url(pid),
        alerts_url(pid, rule["id"]),
        alerts_url(pid, rule["id"], "history"),
    ):
        foreign = await client.get(url, headers=shop_team.outsider.headers)
        assert foreign.status_code == 404
        assert foreign.json()["code"] == "project_not_found"
    elsewhere = await client.post(
        alerts_url(shop_team.outsider_project_id),
        json=cpu_rule(server.id),
        headers=shop_team.outsider.headers,
    )
    assert elsewhere.status_code == 404
    assert elsewhere.json()["code"] == "resource_not_found"
    other_rule = await client.get(
        alerts_url(shop_team.outsider_project_id, rule["id"]), headers=shop_team.outsider.headers
    )
    assert other_rule.json()["code"] == "alert_not_found"

    member_patch = await client.patch(
        alerts_url(pid, rule["id"]), json={"threshold": "90"}, headers=shop_team.member.headers
    )
    assert member_patch.status_code == 403
    patched = await client.patch(
        alerts_url(pid, rule["id"]),
        json={"threshold": "90.5", "comparison": ">=", "enabled": False, "window": "1h"},
        headers=shop_team.owner.headers,
    )
    assert patched.status_code == 200, patched.text
    out = patched.json()
    assert (out["threshold"], out["comparison"], out["enabled"], out["window"]) == (
        "90.5",
        ">=",
        False,
        "1h",
    )
    assert out["source"] == rule["source"]
    # Switching to a month's cost measure drops the window it does not use.
    to_cost = await client.patch(
        alerts_url(pid, rule["id"]),
        json={"source": {"type": "cost", "measure": "month_to_date"}},
        headers=shop_team.admin.headers,
    )
    assert to_cost.status_code == 200, to_cost.text
    assert (to_cost.json()["source"], to_cost.json()["window"]) == (
        {"type": "cost", "measure": "month_to_date"},
        None,
    )
    await db.refresh(row)
    assert (row.source_type, row.resource_id, row.window_seconds) == ("cost", None, None)

    assert (
        await client.delete(alerts_url(pid, rule["id"]), headers=shop_team.member.headers)
    ).status_code == 403
    assert (
        await client.delete(alerts_url(pid, rule["id"]), headers=shop_team.admin.headers)
    ).status_code == 204
    gone = await client.get(alerts_url(pid, rule["id"]), headers=shop_team.viewer.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "alert_not_found"
    db.expire_all()
    assert await db.scalar(select(func.count()).select_from(AlertRule)) == 0
    actions = list(
        await db.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_type == "alert")
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
    )
    assert actions == ["alert.create", "alert.update", "alert.update", "alert.delete"]


async def test_list_is_paginated(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    names = [f"rule {i}" for i in range(5)]
    for name in names:
        body = {
            "name": name,
            "source": {"type": "cost", "measure": "end_of_month_forecast"},
            "comparison": ">=",
            "threshold": "100",
        }
        response = await client.post(alerts_url(pid), json=body, headers=alice.headers)
        assert response.status_code == 201, response.text
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(alerts_url(pid), params=params, headers=alice.headers)).json()
        assert len(page["items"]) <= 2
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == names


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"source": {"type": "metric", "metric": "size_bytes"}}, "source.metric", "unknown_metric"),
        ({"window": None}, "window", "window_required"),
        ({"window": "5 minutes"}, "window", "validation_failed"),
        ({"window": "30s"}, "window", "window_out_of_range"),
        ({"window": "2d"}, "window", "window_out_of_range"),
        ({"comparison": "=="}, "comparison", "validation_failed"),
        ({"threshold": "1.0000001"}, "threshold", "validation_failed"),
        ({"name": ""}, "name", "validation_failed"),
        ({"name": "cpu\nBcc: x@example.com"}, "name", "validation_failed"),
        ({"emails": ["ops@example.com"]}, "emails", "email_not_configured"),
        ({"emails": ["not an address"]}, "emails", "validation_failed"),
        ({"source": {"type": "cost", "measure": "month_to_date"}}, "window", "window_not_used"),
        ({"source": {"type": "cost", "measure": "yearly"}}, "source", "validation_failed"),
        ({"source": {"type": "logs"}}, "source", "validation_failed"),
        ({"owner": "mallory"}, "owner", "validation_failed"),
    ],
)
async def test_invalid_rules_are_422_naming_the_field(
    client: httpx.AsyncClient,
    alice: TestUser,
    db: AsyncSession,
    change: dict[str, Any],
    field: str,
    code: str,
) -> None:
    pid = (await create_project(client, alice))["id"]
    server = await add_resource(db, project_id=pid, name="web-1")
    body = cpu_rule(server.id)
    if "source" in change and change["source"].get("type") == "metric":
        change = {"source": {**body["source"], **change["source"]}}
    response = await client.post(alerts_url(pid), json={**body, **change}, headers=alice.headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == code
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert await db.scalar(select(func.count()).select_from(AlertRule)) == 0


async def test_a_metric_of_another_kind_and_a_taken_name_are_refused(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    bucket = await add_resource(db, project_id=pid, name="assets", kind="bucket")
    wrong = await client.post(alerts_url(pid), json=cpu_rule(bucket.id), headers=alice.headers)
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "source.metric"
    assert "storage_bytes" in wrong.json()["errors"][0]["message"]
    fine = cpu_rule(bucket.id, source={**cpu_rule(bucket.id)["source"], "metric": "object_count"})
    first = await client.post(alerts_url(pid), json=fine, headers=alice.headers)
    assert first.status_code == 201, first.text
    again = await client.post(alerts_url(pid), json=fine, headers=alice.headers)
    assert again.status_code == 409 and again.json()["code"] == "alert_name_taken"
    unknown = await client.post(
        alerts_url(pid),
        json=cpu_rule(uuid.uuid4(), name="other"),
        headers=alice.headers,
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "resource_not_found"


# --- evaluation and webhooks ---------------------------------------------------------


@pytest.fixture
def hook_settings(tmp_path: Path) -> Settings:
    return cloud_settings(tmp_path, **FAST_WEBHOOKS)


async def test_metric_rule_triggers_and_resolves_with_signed_webhooks(
    hook_settings: Settings, test_database_url: str, db: AsyncSession
) -> None:
    async with (
        running_receiver() as receiver,
        cloud_app(hook_settings, test_database_url) as (app, client),
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        webhook = await make_webhook(client, user, pid, receiver.url(), event_types=["alert.*"])
        server = await add_resource(db, project_id=pid, name="web-1")
        created = await client.post(alerts_url(pid), json=cpu_rule(server.id), headers=user.headers)
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]

        async def evaluate() -> None:
            # The app's worker may evaluate the rule at the turn of a minute too: both
            # read the same samples, so the test checks states and deliveries, which
            # happen once either way. While the worker holds the rule this evaluation
            # skips it: wait for the worker's transaction to end.
            await evaluate_rules(
                app.state.sessionmaker, catalog=app.state.catalog, jobs=app.state.jobs.app
            )
            async with app.state.sessionmaker() as session:
                await session.execute(
                    select(AlertRule.id).where(AlertRule.id == uuid.UUID(rule_id)).with_for_update()
                )

        await set_cpu(db, server.id, [70.0, 90.0, 95.0, 97.0])  # avg 88
        await evaluate()
        rule = (await client.get(alerts_url(pid, rule_id), headers=user.headers)).json()
        assert (rule["state"], rule["last_value"]) == ("alerting", "88")
        assert rule["last_evaluated_at"] == rule["state_since"]
        changes = await history(client, user, pid, rule_id)
        assert [(c["from_state"], c["to_state"], c["value"], c["threshold"]) for c in changes] == [
            ("insufficient_data", "alerting", "88", "80")
        ]

        await wait_for(lambda: _arrived(receiver, 1), what="alert.triggered")
        triggered = receiver.requests[0]
        assert verify(webhook["secret"], triggered.headers, triggered.body)
        assert not verify(webhook["secret"], triggered.headers, triggered.body + b" ")
        event = triggered.json()
        assert event["type"] == "alert.triggered"
        assert event["project_id"] == pid
        data = event["data"]
        assert data["alert"] == {
            "id": rule_id,
            "name": "cpu high",
            "source": rule["source"],
            "comparison": ">",
            "threshold": "80",
            "window": "5m",
        }
        assert (data["state"], data["previous_state"], data["value"]) == (
            "alerting",
            "insufficient_data",
            "88",
        )
        assert (data["threshold"], data["comparison"], data["window"]) == ("80", ">", "5m")
        assert data["state_change_id"] == changes[0]["id"]

        # Still above: evaluated again, nothing new.
        await set_cpu(db, server.id, [85.0, 99.0])
        await evaluate()
        await evaluate()
        rule = (await client.get(alerts_url(pid, rule_id), headers=user.headers)).json()
        assert (rule["state"], rule["last_value"]) == ("alerting", "92")
        assert len(await history(client, user, pid, rule_id)) == 1

        await set_cpu(db, server.id, [20.0, 30.0, 10.0])
        await evaluate()
        await wait_for(lambda: _arrived(receiver, 2), what="alert.resolved")
        resolved = receiver.requests[1]
        assert verify(webhook["secret"], resolved.headers, resolved.body)
        assert resolved.json()["type"] == "alert.resolved"
        assert (resolved.json()["data"]["state"], resolved.json()["data"]["value"]) == ("ok", "20")
        changes = await history(client, user, pid, rule_id)
        assert [(c["from_state"], c["to_state"], c["value"]) for c in changes] == [
            ("alerting", "ok", "20"),
            ("insufficient_data", "alerting", "88"),
        ]
        await evaluate()
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == 2

        db.expire_all()
        audits = list(
            await db.scalars(
                select(AuditEvent)
                .where(AuditEvent.target_id == rule_id, AuditEvent.actor_type == "system")
                .order_by(AuditEvent.id)
            )
        )
        assert [a.action for a in audits] == ["alert.triggered", "alert.resolved"]
        assert audits[0].project_id == uuid.UUID(pid)
        assert audits[0].details["value"] == "88"
        activity = await client.get(f"/v1/projects/{pid}/activity", headers=user.headers)
        assert activity.status_code == 200, activity.text
        assert "alert.triggered" in activity.text and "alert.resolved" in activity.text


async def _arrived(receiver: Any, count: int) -> bool:
    return len(receiver.requests) >= count


async def test_concurrent_evaluators_notify_once(
    make_client: Any, settings: Settings, test_database_url: str, db: AsyncSession, app: Any
) -> None:
    engines = [create_engine(settings, test_database_url, pool_size=2) for _ in range(4)]
    async with make_client(webhook_allowed_networks="127.0.0.0/8") as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        await make_webhook(client, user, pid, "http://127.0.0.1:9/hook", event_types=["alert.*"])
        servers = [await add_resource(db, project_id=pid, name=f"web-{i}") for i in range(3)]
        for i, server in enumerate(servers):
            body = cpu_rule(server.id, name=f"cpu {i}", comparison=">=", threshold="50")
            assert (
                await client.post(alerts_url(pid), json=body, headers=user.headers)
            ).status_code == 201
            await set_cpu(db, server.id, [60.0, 70.0])
        counts = await asyncio.gather(
            *(
                evaluate_rules(
                    create_sessionmaker(engine), catalog=app.state.catalog, jobs=app.state.jobs.app
                )
                for engine in engines
            )
        )
    for engine in engines:
        await engine.dispose()
    assert sum(counts) == 3
    assert await db.scalar(select(func.count()).select_from(AlertStateChange)) == 3
    deliveries = list(
        await db.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event_type == "alert.triggered")
        )
    )
    assert sorted(d.payload["data"]["alert"]["name"] for d in deliveries) == [
        "cpu 0",
        "cpu 1",
        "cpu 2",
    ]


async def test_a_metric_without_samples_is_insufficient_data_and_disabled_rules_wait(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, app: Any
) -> None:
    pid = (await create_project(client, alice))["id"]
    server = await add_resource(db, project_id=pid, name="web-1")
    body = cpu_rule(server.id, comparison="<", threshold="5")
    rule_id = (await client.post(alerts_url(pid), json=body, headers=alice.headers)).json()["id"]
    disabled = cpu_rule(server.id, name="off", enabled=False)
    off_id = (await client.post(alerts_url(pid), json=disabled, headers=alice.headers)).json()["id"]

    async def evaluate() -> int:
        return await evaluate_rules(
            app.state.sessionmaker, catalog=app.state.catalog, jobs=app.state.jobs.app
        )

    assert await evaluate() == 0
    rule = (await client.get(alerts_url(pid, rule_id), headers=alice.headers)).json()
    assert (rule["state"], rule["last_value"]) == ("insufficient_data", None)
    assert rule["last_evaluated_at"] is not None

    await set_cpu(db, server.id, [1.0, 2.0])
    assert await evaluate() == 1
    await set_cpu(db, server.id, [])
    assert await evaluate() == 1
    changes = await history(client, alice, pid, rule_id)
    assert [(c["from_state"], c["to_state"], c["value"]) for c in changes] == [
        ("alerting", "insufficient_data", None),
        ("insufficient_data", "alerting", "1.5"),
    ]
    off = (await client.get(alerts_url(pid, off_id), headers=alice.headers)).json()
    assert (off["state"], off["last_evaluated_at"]) == ("insufficient_data", None)
    # Leaving alerting because the samples stopped resolves the alert.
    kinds = list(await db.scalars(select(WebhookDelivery.event_type)))
    assert kinds == []  # no webhook in this project: nothing queued
    actions = list(
        await db.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.actor_type == "system")
            .order_by(AuditEvent.id)
        )
    )
    assert actions == ["alert.triggered", "alert.resolved"]


async def test_cost_rules_fire_on_the_months_cost_its_forecast_and_a_window(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, app: Any
) -> None:
    pid = (await create_project(client, alice))["id"]
    await spend_this_month(db, pid)
    cost = (await client.get(f"/v1/projects/{pid}/cost", headers=alice.headers)).json()
    month_to_date = Decimal(cost["forecast"]["month_to_date_usd"])
    assert month_to_date > 0
    ids = {}
    for measure, window, threshold in (
        ("month_to_date", None, month_to_date - Decimal("0.01")),
        # Nothing runs now (the segment is closed): the forecast is the month so far.
        ("end_of_month_forecast", None, month_to_date + 1),
        ("window", "1h", Decimal("0.01")),
    ):
        body: dict[str, Any] = {
            "name": measure,
            "source": {"type": "cost", "measure": measure},
            "comparison": ">",
            "threshold": str(threshold),
        }
        if window:
            body["window"] = window
        response = await client.post(alerts_url(pid), json=body, headers=alice.headers)
        assert response.status_code == 201, response.text
        ids[measure] = response.json()["id"]

    changed = await evaluate_rules(
        app.state.sessionmaker, catalog=app.state.catalog, jobs=app.state.jobs.app
    )
    assert changed == 3
    states = {
        measure: (await client.get(alerts_url(pid, rule_id), headers=alice.headers)).json()
        for measure, rule_id in ids.items()
    }
    assert states["month_to_date"]["state"] == "alerting"
    assert Decimal(states["month_to_date"]["last_value"]) == month_to_date
    assert states["end_of_month_forecast"]["state"] == "ok"
    assert Decimal(states["end_of_month_forecast"]["last_value"]) == month_to_date
    assert states["window"]["state"] == "alerting"
    assert Decimal(states["window"]["last_value"]) > 0
    changes = await history(client, alice, pid, ids["month_to_date"])
    assert [(c["from_state"], c["to_state"]) for c in changes] == [
        ("insufficient_data", "alerting")
    ]


# --- e-mail --------------------------------------------------------------------------


@dataclass
class Inbox:
    """What the SMTP server on 127.0.0.1 accepted."""

    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        assert isinstance(envelope.content, bytes)
        assert envelope.mail_from is not None
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 OK"


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def test_alert_emails_arrive_at_the_smtp_server(
    tmp_path: Path, test_database_url: str, db: AsyncSession, inbox: tuple[Inbox, int]
) -> None:
    received, port = inbox
    settings = cloud_settings(
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="alerts@lariba.test",
    )
    async with cloud_app(settings, test_database_url) as (app, client):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        await spend_this_month(db, pid)
        body = {
            "name": "spend",
            "source": {"type": "cost", "measure": "month_to_date"},
            "comparison": ">",
            "threshold": "0",
            "emails": ["ops@example.com", "oncall@example.com", "ops@example.com"],
        }
        created = await client.post(alerts_url(pid), json=body, headers=user.headers)
        assert created.status_code == 201, created.text
        assert created.json()["emails"] == ["ops@example.com", "oncall@example.com"]

        # The app's worker may be the one to evaluate it (at the turn of a minute).
        await evaluate_rules(
            app.state.sessionmaker, catalog=app.state.catalog, jobs=app.state.jobs.app
        )

        async def both_arrived() -> bool:
            return len(received.messages) >= 2

        await wait_for(both_arrived, what="two alert e-mails")
        assert sorted(rcpt for _, [rcpt], _ in received.messages) == [
            "oncall@example.com",
            "ops@example.com",
        ]
        for sender, _, message in received.messages:
            assert sender == "alerts@lariba.test"
            assert message["Subject"] == "[Lariba Cloud] ALERTING: spend"
            assert message["From"] == "alerts@lariba.test"
            text_body = message.get_payload(decode=True)
            assert isinstance(text_body, bytes)
            assert b"value > 0" in text_body
            assert created.json()["id"].encode() in text_body
        # The jobs carry ids only: no address or text in the job table (or its logs).
        args = list(
            (
                await db.execute(
                    text("SELECT args FROM procrastinate_jobs WHERE task_name = 'send_alert_email'")
                )
            ).scalars()
        )
        assert len(args) == 2
        assert all(set(a) == {"change_id", "recipient"} for a in args)
