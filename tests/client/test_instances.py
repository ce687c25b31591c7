"""The client drives instances end to end against a real server: create, wait, list every
page, stop, delete, and the state the API then reports."""

from __future__ import annotations

import uuid

import pytest

from lariba.client import Client, FirewallRule, NotFound, Operation, OperationTimeout
from tests.client.conftest import RUN_FOREVER
from tests.fixtures.console import ConsoleServer


def test_create_instance_and_wait_until_running(
    client: Client, console_server: ConsoleServer
) -> None:
    project = client.projects.create("sdk", description="made by the SDK")
    instances = client.instances(project.id)
    progress: list[Operation] = []

    created = instances.create(
        name="web-1",
        size="nano",
        image="shell",
        user_data=RUN_FOREVER,
        firewall=[FirewallRule(protocol="tcp", cidr="10.0.0.0/8", port_from=22)],
        labels={"env": "test"},
    )
    done = client.operations(project.id).wait(
        created, timeout=60, poll=0.2, on_progress=progress.append
    )

    assert created.type == "create"
    assert created.status in ("pending", "running")
    assert done.id == created.id
    assert done.status == "succeeded"
    assert done.finished_at is not None
    assert progress[-1] == done
    instance = instances.get(created.resource_id)
    assert instance.name == "web-1"
    assert instance.status == "running"
    assert instance.labels == {"env": "test"}
    assert instance.firewall == (
        FirewallRule(protocol="tcp", cidr="10.0.0.0/8", port_from=22, port_to=22),
    )
    assert instance.has_user_data
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        body = api.get(f"/v1/projects/{project.id}/instances/{instance.id}").json()
    assert body["status"] == "running"
    assert body["labels"] == {"env": "test"}
    assert isinstance(instances.console(instance.id), str)


def test_list_follows_every_page(client: Client, console_server: ConsoleServer) -> None:
    project = client.projects.create("paged")
    instances = client.instances(project.id)
    names = ["web-1", "web-2", "web-3"]
    for name in names:
        operation = instances.create(
            name=name, size="nano", image="shell", user_data=RUN_FOREVER, labels={"n": name}
        )
        client.operations(project.id).wait(operation, timeout=60, poll=0.2)

    listed = instances.list(page_size=2)
    only_two = instances.list(label="n=web-2", page_size=1)

    assert [instance.name for instance in listed] == names
    assert [instance.name for instance in only_two] == ["web-2"]
    assert instances.list(status="stopped") == []
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        first = api.get(f"/v1/projects/{project.id}/instances", params={"limit": 2}).json()
    assert first["next_cursor"] is not None
    assert [item["name"] for item in first["items"]] == names[:2]


def test_stop_then_delete(client: Client, console_server: ConsoleServer) -> None:
    project = client.projects.create("power")
    instances = client.instances(project.id)
    operations = client.operations(project.id)
    created = operations.wait(
        instances.create(name="db-1", size="nano", image="shell", user_data=RUN_FOREVER),
        timeout=60,
        poll=0.2,
    )
    instance_id = created.resource_id

    stopped = operations.wait(instances.stop(instance_id), timeout=60, poll=0.2)

    assert stopped.type == "stop"
    assert stopped.status == "succeeded"
    assert instances.get(instance_id).status == "stopped"
    assert [i.id for i in instances.list(status="stopped")] == [instance_id]

    deleted = operations.wait(instances.delete(instance_id), timeout=60, poll=0.2)

    assert deleted.type == "delete"
    assert instances.list() == []
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        body = api.get(f"/v1/projects/{project.id}/instances/{instance_id}").json()
    assert body["status"] == "deleted"


def test_wait_gives_up_after_its_timeout(client: Client) -> None:
    project = client.projects.create("slow")
    instances = client.instances(project.id)
    operations = client.operations(project.id)
    created = instances.create(name="web-1", size="nano", image="shell", user_data=RUN_FOREVER)

    with pytest.raises(OperationTimeout) as raised:
        operations.wait(created.id, timeout=0, poll=0.05)

    assert raised.value.code == "operation_timeout"
    assert raised.value.operation.id == created.id
    assert raised.value.operation.status in ("pending", "running")
    assert created.id in str(raised.value)
    # The operation carries on regardless of the client giving up.
    assert operations.wait(created.id, timeout=60, poll=0.2).status == "succeeded"


def test_unknown_operation_is_not_found(client: Client) -> None:
    project = client.projects.create("ops")
    unknown = str(uuid.uuid4())

    with pytest.raises(NotFound) as raised:
        client.operations(project.id).wait(unknown, timeout=5)

    assert raised.value.code == "operation_not_found"
