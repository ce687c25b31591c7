"""The client reads what a project used, cost and did, against a real server: usage and
cost of a running instance, its log (and following it), the audit log and its export,
alert rules, the budget, and the live event stream (and its resumption)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from lariba.client import (
    AsyncClient,
    Client,
    CostSource,
    Event,
    Instance,
    LogEntry,
    MetricSource,
    NotFound,
    Project,
)
from tests.client.conftest import RUN_FOREVER, Account
from tests.client.scripted import scripted_server
from tests.fixtures.console import ConsoleServer


def running_instance(client: Client, name: str = "web-1") -> tuple[Project, Instance]:
    project = client.projects.create(f"watch-{name}")
    created = client.instances(project.id).create(
        name=name, size="nano", image="shell", user_data=RUN_FOREVER
    )
    client.operations(project.id).wait(created, timeout=60, poll=0.2)
    return project, client.instances(project.id).get(created.resource_id)


def api_json(client: Client, server: ConsoleServer, path: str) -> Any:
    assert client.tokens is not None
    with server.api(client.tokens.access_token) as api:
        response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def until(entries: Iterator[Any], found: Any) -> list[Any]:
    """What ``entries`` gives up to and including the first one ``found`` accepts."""
    seen = []
    for entry in entries:
        seen.append(entry)
        if found(entry):
            return seen
    raise AssertionError("the stream ended")


def test_usage_and_cost_of_a_running_instance(
    client: Client, console_server: ConsoleServer
) -> None:
    project, instance = running_instance(client)

    usage = client.usage(project.id).report(group_by="resource")
    cost = client.cost(project.id).report(group_by=["resource", "meter"])

    body = api_json(client, console_server, f"/v1/projects/{project.id}/usage?group_by=resource")
    assert usage.project_id == project.id
    assert usage.group_by == tuple(body["group_by"])
    [row] = [item for item in usage.items if item.meter == "instance"]
    assert row.resource is not None
    assert (row.resource.id, row.resource.kind, row.resource.name) == (
        instance.id,
        "instance",
        "web-1",
    )
    assert row.sku == "nano"
    assert row.unit == "Hours"
    assert row.metered_quantity > 0
    [api_row] = [item for item in body["items"] if item["meter"] == "instance"]
    assert api_row["resource"]["id"] == instance.id
    assert cost.currency == "USD"
    [cost_row] = [item for item in cost.items if item.meter == "instance"]
    assert cost_row.resource is not None and cost_row.resource.id == instance.id
    assert cost.total_usd == sum((item.cost_usd for item in cost.items), Decimal(0))
    assert cost.forecast.end_of_month_usd >= cost.forecast.month_to_date_usd


def test_cost_export_writes_the_focus_csv(
    client: Client, console_server: ConsoleServer, tmp_path: Path
) -> None:
    project, instance = running_instance(client)
    target = tmp_path / "cost.csv"

    client.cost(project.id).export(target)

    header, *rows = target.read_text().splitlines()
    assert header.startswith("BillingAccountId,BillingAccountName,BillingCurrency")
    assert any(instance.id in row and "web-1" in row for row in rows)


def test_budget_set_show_and_delete(client: Client, console_server: ConsoleServer) -> None:
    project = client.projects.create("budgeted")
    cost = client.cost(project.id)

    with pytest.raises(NotFound) as missing:
        cost.budget()
    budget = cost.set_budget("20.00", thresholds=[50, 100], block_provisioning=True)

    assert missing.value.code == "budget_not_set"
    assert budget.amount_usd == Decimal("20.00")
    assert budget.thresholds == (50, 100)
    assert budget.block_provisioning
    assert cost.budget() == budget
    body = api_json(client, console_server, f"/v1/projects/{project.id}/budget")
    assert body["amount_usd"] == "20.00"
    assert body["thresholds"] == [50, 100]
    cost.delete_budget()
    with pytest.raises(NotFound):
        cost.budget()


def test_log_of_an_instance_and_following_it(client: Client, console_server: ConsoleServer) -> None:
    project, instance = running_instance(client)
    logs = client.logs(project.id)

    entries = logs.get(instance.id)

    body = api_json(
        client, console_server, f"/v1/projects/{project.id}/logs?resource_id={instance.id}"
    )
    assert [entry.summary for entry in entries] == [item["summary"] for item in body["items"]]
    [create] = [entry for entry in entries if entry.operation is not None]
    assert create.source == "operation"
    assert create.operation is not None and create.operation.type == "create"
    assert create.operation.status == "succeeded"
    assert [e.event.to_status for e in entries if e.event is not None][-1] == "running"

    followed = logs.follow(instance.id, poll=0.2)
    first = until(followed, lambda e: e.event is not None and e.event.to_status == "running")
    client.instances(project.id).stop(instance.id)
    later = until(followed, lambda e: e.event is not None and e.event.to_status == "stopped")
    followed.close()

    assert [entry.key for entry in first] == [entry.key for entry in entries]
    kinds = [(entry.source, entry.operation.type if entry.operation else None) for entry in later]
    assert ("operation", "stop") in kinds
    assert [e.event.to_status for e in later if e.event is not None][-2:] == [
        "stopping",
        "stopped",
    ]


def test_log_of_a_resource_of_another_project_is_not_found(client: Client) -> None:
    _, instance = running_instance(client)
    other = client.projects.create("other")

    with pytest.raises(NotFound) as raised:
        client.logs(other.id).get(instance.id)

    assert raised.value.code == "resource_not_found"


def test_audit_list_filters_and_export(
    client: Client, console_server: ConsoleServer, account: Account, tmp_path: Path
) -> None:
    project, instance = running_instance(client)
    audit = client.audit(project.id)

    events = audit.list(action="instance.")
    everything = audit.list()
    first = audit.list(limit=1)
    count = audit.export(tmp_path / "audit.jsonl")

    body = api_json(client, console_server, f"/v1/projects/{project.id}/audit?action=instance.")
    assert [event.id for event in events] == [item["id"] for item in body["items"]]
    [create] = events
    assert create.action == "instance.create"
    assert create.target_id == instance.id
    assert create.actor_label == account.email
    assert create.outcome == "success"
    assert {"project.create", "instance.create"} <= {event.action for event in everything}
    assert [event.id for event in first] == [everything[0].id]
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert count == len(lines) == len(everything)
    assert [line["id"] for line in lines] == sorted(event.id for event in everything)


def test_alert_rules_create_list_update_history_delete(
    client: Client, console_server: ConsoleServer
) -> None:
    project, instance = running_instance(client)
    alerts = client.alerts(project.id)

    cpu = alerts.create(
        name="web-1 cpu high",
        source=MetricSource(resource_id=instance.id, metric="cpu_percent", aggregate="avg"),
        comparison=">",
        threshold=80,
        window="5m",
    )
    month = alerts.create(
        name="month",
        source=CostSource(measure="end_of_month_forecast"),
        comparison=">=",
        threshold="500",
    )
    changed = alerts.update(cpu.id, threshold=Decimal("90.5"), enabled=False)

    assert cpu.source == MetricSource(instance.id, "cpu_percent", "avg")
    assert cpu.state == "insufficient_data"
    assert cpu.emails == ()
    assert month.window is None
    assert [rule.id for rule in alerts.list()] == [cpu.id, month.id]
    assert changed.threshold == Decimal("90.5")
    assert not changed.enabled
    assert changed.name == "web-1 cpu high"
    assert alerts.get(cpu.id) == changed
    body = api_json(client, console_server, f"/v1/projects/{project.id}/alerts/{cpu.id}")
    assert Decimal(body["threshold"]) == Decimal("90.5")
    assert body["enabled"] is False
    assert alerts.history(cpu.id) == []
    alerts.delete(cpu.id)
    with pytest.raises(NotFound):
        alerts.get(cpu.id)
    remaining = api_json(client, console_server, f"/v1/projects/{project.id}/alerts")
    assert [rule["id"] for rule in remaining["items"]] == [month.id]


def test_event_stream_shows_status_changes_as_they_happen(client: Client) -> None:
    project = client.projects.create("live")
    stream = client.events(project.id).stream(after=0)
    created = client.instances(project.id).create(
        name="web-1", size="nano", image="shell", user_data=RUN_FOREVER
    )
    instance_id = created.resource_id

    seen = until(stream, lambda e: e.resource_id == instance_id and e.to_status == "running")
    client.instances(project.id).stop(instance_id)
    seen += until(stream, lambda e: e.resource_id == instance_id and e.to_status == "stopped")
    stream.close()

    statuses = [event.to_status for event in seen if event.resource_id == instance_id]
    assert statuses[0] == "pending"
    assert statuses[-2:] == ["stopping", "stopped"]
    assert "running" in statuses
    listed = client.events(project.id).list(limit=100)
    assert sorted(event.id for event in listed) == sorted(event.id for event in seen)
    assert all(isinstance(event, Event) for event in listed)


async def test_async_client_reads_logs_audit_and_the_stream(
    console_server: ConsoleServer, account: Account
) -> None:
    async with AsyncClient(
        console_server.url, email=account.email, password=account.password
    ) as client:
        project = await client.projects.create("async-watch")
        stream = client.events(project.id).stream(after=0)
        created = await client.instances(project.id).create(
            name="web-1", size="nano", image="shell", user_data=RUN_FOREVER
        )
        statuses = []
        async for event in stream:
            statuses.append(event.to_status)
            if event.to_status == "running":
                break
        await stream.aclose()
        entries: list[LogEntry] = await client.logs(project.id).get(created.resource_id)
        audit = await client.audit(project.id).list(action="instance.create")

    assert statuses[0] == "pending"
    assert statuses[-1] == "running"
    assert entries[0].at <= entries[-1].at
    assert any(entry.operation and entry.operation.id == created.id for entry in entries)
    assert [event.target_id for event in audit] == [created.resource_id]


EVENT = {
    "resource_id": "5641ce75-0a35-435d-b733-bb33af6550cd",
    "resource_kind": "instance",
    "operation_id": None,
    "type": "status_changed",
    "from_status": "pending",
    "reason": None,
    "occurred_at": "2026-11-30T14:42:13.240147Z",
}


def sse(event_id: int, to_status: str) -> bytes:
    data = json.dumps({**EVENT, "id": event_id, "to_status": to_status})
    return f"id: {event_id}\nevent: status_changed\ndata: {data}\n\n".encode()


def test_a_dropped_stream_resumes_after_the_last_event() -> None:
    """The first connection sends one event and is cut; the client reconnects with its
    id as Last-Event-ID and gets the next."""

    def script(number: int, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        if number == 0:
            # Promises more than it sends: the connection ends mid-body.
            body = b"retry: 10\n\n" + sse(7, "provisioning")
            handler.send_header("Content-Length", str(len(body) + 100))
        else:
            body = sse(8, "running")
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True

    with scripted_server(script) as server, Client(server.url, token="t") as client:
        stream = client.events("p-1").stream()
        events = [next(stream), next(stream)]
        stream.close()

    assert [(event.id, event.to_status) for event in events] == [
        (7, "provisioning"),
        (8, "running"),
    ]
    assert [seen.headers.get("last-event-id") for seen in server.seen[:2]] == [None, "7"]
    assert all(seen.headers["accept"] == "text/event-stream" for seen in server.seen)
    assert server.seen[0].path == "/v1/projects/p-1/events"
