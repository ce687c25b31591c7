"""Projects and instances through the command line, against a real server: create with
--wait, list as JSON, stop, delete."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.conftest import RUN_FOREVER, Lariba
from tests.fixtures.console import ConsoleServer


def test_instance_lifecycle_with_wait(
    logged_in: Lariba, console_server: ConsoleServer, tmp_path: Path
) -> None:
    lariba = logged_in
    project = json.loads(lariba.ok("projects", "create", "cli-demo", "--output", "json"))
    assert project["name"] == "cli-demo"
    lariba.ok("projects", "use", project["id"])
    assert lariba.profiles()["default"]["project"] == project["id"]
    boot = tmp_path / "boot.sh"
    boot.write_text(RUN_FOREVER)

    created = lariba(
        "instances", "create", "web-1", "--size", "nano", "--image", "shell",
        "--user-data-file", str(boot), "--label", "env=test",
        "--firewall", "tcp:22@203.0.113.0/24", "--wait", "--output", "json",
    )  # fmt: skip

    assert created.returncode == 0, created.stderr
    instance = json.loads(created.stdout)
    assert instance["status"] == "running"
    assert instance["labels"] == {"env": "test"}
    assert instance["firewall"] == [
        {"protocol": "tcp", "cidr": "203.0.113.0/24", "port_from": 22, "port_to": 22}
    ]
    assert instance["has_user_data"] is True
    assert "create succeeded" in created.stderr  # live progress, off stdout

    listed = json.loads(lariba.ok("instances", "list", "--output", "json"))
    assert [(i["id"], i["name"], i["status"]) for i in listed] == [
        (instance["id"], "web-1", "running")
    ]
    table = lariba.ok("instances", "list")
    assert table.splitlines()[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert instance["id"] in table
    as_yaml = yaml.safe_load(lariba.ok("instances", "get", instance["id"], "--output", "yaml"))
    assert as_yaml["name"] == "web-1"

    stopped = json.loads(
        lariba.ok("instances", "stop", instance["id"], "--wait", "--output", "json")
    )
    assert stopped["status"] == "stopped"

    deleted = lariba("instances", "delete", instance["id"], "--wait")
    assert deleted.returncode == 0, deleted.stderr
    assert f"Instance {instance['id']} deleted." in deleted.stdout
    assert json.loads(lariba.ok("instances", "list", "--output", "json")) == []
    with console_server.api(lariba.profiles()["default"]["access_token"]) as api:
        gone = api.get(f"/v1/projects/{project['id']}/instances/{instance['id']}")
    assert gone.status_code == 404 or gone.json()["status"] == "deleted"

    lariba.ok("projects", "delete", project["id"])
    assert "project" not in lariba.profiles()["default"]


def test_change_without_wait_names_the_operation(logged_in: Lariba, tmp_path: Path) -> None:
    lariba = logged_in
    project = json.loads(lariba.ok("projects", "create", "no-wait", "--output", "json"))

    created = json.loads(
        lariba.ok(
            "instances",
            "create",
            "quick",
            "--size",
            "nano",
            "--image",
            "shell",
            "--project",
            project["id"],
            "--output",
            "json",
        )
    )

    assert created["type"] == "create"
    assert created["status"] in {"pending", "running", "succeeded"}
    waited = lariba(
        "operations", "wait", created["id"], "--project", project["id"], "--output", "json"
    )
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "succeeded"
    lariba.ok("instances", "delete", created["resource_id"], "--project", project["id"], "--wait")
