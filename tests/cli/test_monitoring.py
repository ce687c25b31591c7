"""Usage, cost, budget, logs, audit, alerts and live events through the command line,
against a real server; and an operation that really fails, with --wait exiting 5."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from lariba.providers.local import local_provider
from tests.cli.conftest import RUN_FOREVER, Lariba
from tests.fixtures.console import ConsoleServer


def project_with_instance(lariba: Lariba, tmp_path: Path, name: str) -> tuple[str, str]:
    """A new project, made the profile's default, with a running instance."""
    project = json.loads(lariba.ok("projects", "create", name, "--output", "json"))
    lariba.ok("projects", "use", project["id"])
    boot = tmp_path / f"{name}.sh"
    boot.write_text(RUN_FOREVER)
    instance = json.loads(
        lariba.ok(
            "instances",
            "create",
            "web-1",
            "--size",
            "nano",
            "--image",
            "shell",
            "--user-data-file",
            str(boot),
            "--wait",
            "--output",
            "json",
        )
    )
    return project["id"], instance["id"]


def api(server: ConsoleServer, lariba: Lariba, path: str) -> Any:
    token = lariba.profiles()["default"]["access_token"]
    with server.api(token) as client:
        return client.get(path)


def test_usage_cost_and_budget(
    logged_in: Lariba, console_server: ConsoleServer, tmp_path: Path
) -> None:
    lariba = logged_in
    project_id, instance_id = project_with_instance(lariba, tmp_path, "costs")

    usage = json.loads(lariba.ok("usage", "--group-by", "resource", "--output", "json"))
    cost = json.loads(lariba.ok("cost", "--group-by", "resource", "--output", "json"))
    table = lariba.ok("cost")

    [row] = [item for item in usage["items"] if item["meter"] == "instance"]
    assert row["resource"] == {"id": instance_id, "kind": "instance", "name": "web-1"}
    assert row["sku"] == "nano"
    assert Decimal(row["metered_quantity"]) > 0
    assert usage["project_id"] == project_id
    assert cost["currency"] == "USD"
    assert instance_id in {item["resource"]["id"] for item in cost["items"] if item["resource"]}
    assert Decimal(cost["total_usd"]) == sum(Decimal(i["cost_usd"]) for i in cost["items"])
    assert "Total: " in table
    assert "Forecast for " in table

    missing = lariba("cost", "budget", "show")
    assert missing.returncode == 1
    assert "has no budget" in missing.stderr
    budget = json.loads(
        lariba.ok(
            "cost",
            "budget",
            "set",
            "20",
            "--threshold",
            "80",
            "--block-provisioning",
            "--output",
            "json",
        )
    )
    assert budget["amount_usd"] == "20.00"
    assert budget["thresholds"] == [80]
    stored = api(console_server, lariba, f"/v1/projects/{project_id}/budget").json()
    assert (stored["amount_usd"], stored["block_provisioning"]) == ("20.00", True)
    shown = yaml.safe_load(lariba.ok("cost", "budget", "show", "--output", "yaml"))
    assert shown["amount_usd"] == "20.00"

    export = tmp_path / "focus.csv"
    lariba.ok("cost", "export", str(export))
    assert export.read_text().startswith("BillingAccountId,")
    assert instance_id in export.read_text()


def test_logs_and_audit(logged_in: Lariba, console_server: ConsoleServer, tmp_path: Path) -> None:
    lariba = logged_in
    project_id, instance_id = project_with_instance(lariba, tmp_path, "logged")

    entries = json.loads(lariba.ok("logs", instance_id, "--output", "json"))
    table = lariba.ok("logs", instance_id)
    audit = json.loads(lariba.ok("audit", "--action", "instance.", "--output", "json"))
    export = tmp_path / "audit.jsonl"
    exported = lariba("audit", "--export", str(export))
    unknown = lariba("logs", str(uuid.uuid4()))

    body = api(console_server, lariba, f"/v1/projects/{project_id}/logs?resource_id={instance_id}")
    assert [e["summary"] for e in entries] == [i["summary"] for i in body.json()["items"]]
    assert entries[-1]["event"]["to_status"] == "running"
    assert any(e["operation"] and e["operation"]["type"] == "create" for e in entries)
    assert table.splitlines()[0].split() == ["AT", "SOURCE", "SUMMARY"]
    assert "provisioning → running" in table
    [created] = audit
    assert (created["action"], created["target_id"], created["outcome"]) == (
        "instance.create",
        instance_id,
        "success",
    )
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [line["action"] for line in lines][:2] == ["project.create", "instance.create"]
    assert f"Wrote {len(lines)} audit events" in exported.stderr
    assert unknown.returncode == 1
    assert "not found in project" in unknown.stderr


def test_alert_rules(logged_in: Lariba, console_server: ConsoleServer, tmp_path: Path) -> None:
    lariba = logged_in
    project_id, instance_id = project_with_instance(lariba, tmp_path, "alerted")

    rule = json.loads(
        lariba.ok(
            "alerts",
            "create",
            "web-1 cpu high",
            "--resource",
            instance_id,
            "--metric",
            "cpu_percent",
            "--comparison",
            ">",
            "--threshold",
            "80",
            "--window",
            "5m",
            "--output",
            "json",
        )
    )
    listed = json.loads(lariba.ok("alerts", "list", "--output", "json"))
    updated = json.loads(
        lariba.ok("alerts", "update", rule["id"], "--threshold", "90", "--disabled", "-o", "json")
    )
    history = json.loads(lariba.ok("alerts", "history", rule["id"], "--output", "json"))
    table = lariba.ok("alerts", "get", rule["id"])
    no_source = lariba("alerts", "create", "x", "--comparison", ">", "--threshold", "1")

    assert rule["source"] == {
        "resource_id": instance_id,
        "metric": "cpu_percent",
        "aggregate": "avg",
    }
    assert rule["state"] == "insufficient_data"
    assert [r["id"] for r in listed] == [rule["id"]]
    assert (Decimal(updated["threshold"]), updated["enabled"]) == (Decimal(90), False)
    stored = api(console_server, lariba, f"/v1/projects/{project_id}/alerts/{rule['id']}").json()
    assert (Decimal(stored["threshold"]), stored["enabled"]) == (Decimal(90), False)
    assert history == []
    assert "web-1 cpu high" in table
    assert no_source.returncode == 2
    assert "--resource ID --metric NAME, or --cost MEASURE" in no_source.stderr

    deleted = lariba("alerts", "delete", rule["id"])
    assert deleted.returncode == 0, deleted.stderr
    gone = api(console_server, lariba, f"/v1/projects/{project_id}/alerts/{rule['id']}")
    assert gone.status_code == 404
    again = lariba("alerts", "get", rule["id"])
    assert again.returncode == 1
    assert f"alert {rule['id']} not found in project {project_id}" in again.stderr


def test_events_follow_prints_status_changes_until_interrupted(
    logged_in: Lariba, console_server: ConsoleServer, tmp_path: Path
) -> None:
    lariba = logged_in
    project = json.loads(lariba.ok("projects", "create", "live", "--output", "json"))
    lariba.ok("projects", "use", project["id"])
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lariba.cli.main",
            "events",
            "--follow",
            "--after",
            "0",
            "--output",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LARIBA_CONFIG": str(lariba.config)},
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:
        for line in follower.stdout or ():
            lines.put(line)

    threading.Thread(target=read_lines, daemon=True).start()

    def read_until(status: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not events or events[-1]["to_status"] != status:
            assert follower.poll() is None, follower.stderr and follower.stderr.read()
            events.append(json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic()))))
        return events

    try:
        boot = tmp_path / "boot.sh"
        boot.write_text(RUN_FOREVER)
        created = json.loads(
            lariba.ok(
                "instances",
                "create",
                "web-1",
                "--size",
                "nano",
                "--image",
                "shell",
                "--user-data-file",
                str(boot),
                "--output",
                "json",
            )
        )
        seen = read_until("running")
        lariba.ok("instances", "stop", created["resource_id"])
        seen += read_until("stopped")
        follower.send_signal(signal.SIGINT)
        code = follower.wait(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()

    assert code == 130
    assert {event["resource_id"] for event in seen} == {created["resource_id"]}
    statuses = [event["to_status"] for event in seen]
    assert statuses[0] == "pending"
    assert statuses[-2:] == ["stopping", "stopped"]
    assert "running" in statuses
    stored = api(console_server, lariba, f"/v1/projects/{project['id']}/events?limit=100")
    assert sorted(e["id"] for e in stored.json()["items"]) == sorted(e["id"] for e in seen)
    assert follower.stderr is not None
    errors = follower.stderr.read()
    assert "Following the events of project" in errors
    assert "interrupted" in errors


def test_failed_operation_with_wait_exits_5_naming_it_and_why(
    logged_in: Lariba, console_server: ConsoleServer, tmp_path: Path
) -> None:
    """The instance is terminated at the provider behind Lariba's back (as someone with
    access to the host could); stopping it then really fails."""
    lariba = logged_in
    project_id, instance_id = project_with_instance(lariba, tmp_path, "doomed")
    compute = local_provider(console_server.app.state.settings).compute

    async def terminate_outside_lariba() -> None:
        found = await compute.find_instance(region="local", resource_id=uuid.UUID(instance_id))
        assert found is not None
        await compute.terminate_instance(region="local", provider_id=found.provider_id)

    asyncio.run(terminate_outside_lariba())
    stopped = lariba("instances", "stop", instance_id, "--wait")

    assert stopped.returncode == 5, (stopped.stdout, stopped.stderr)
    operations = api(
        console_server, lariba, f"/v1/projects/{project_id}/operations?resource_id={instance_id}"
    ).json()["items"]
    [stop] = [operation for operation in operations if operation["type"] == "stop"]
    assert stop["status"] == "failed"
    assert stop["error"]["code"] in stopped.stderr
    assert f"operation {stop['id']} (stop) failed: " in stopped.stderr
    assert stop["error"]["message"] in stopped.stderr
