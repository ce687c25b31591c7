"""The client drives managed databases against a real server: create and wait, the
credentials shown once, reveal them and connect, delete."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from lariba.client import Client, Conflict, DatabaseCreation, NotFound
from tests.fixtures.console import ConsoleServer


def test_create_database_reveal_and_connect(client: Client, console_server: ConsoleServer) -> None:
    project = client.projects.create("data")
    databases = client.databases(project.id)

    created = databases.create("orders", size="small", storage_gb=1, labels={"team": "shop"})
    done = client.operations(project.id).wait(created, timeout=120, poll=0.2)
    database = databases.get(created.resource_id)
    credentials = databases.reveal(database.id)

    assert isinstance(created, DatabaseCreation)
    assert created.type == "create"
    assert created.credentials.password
    assert created.credentials.password not in repr(created.credentials)
    assert done.status == "succeeded"
    assert database.name == "orders"
    assert database.status == "available"
    assert database.labels == {"team": "shop"}
    assert database.endpoint is not None
    assert database.endpoint.username == created.credentials.username
    assert credentials.password == created.credentials.password
    assert credentials.uri is not None
    assert credentials.uri.startswith("postgresql://")
    with psycopg.connect(credentials.uri, connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert [d.id for d in databases.list()] == [database.id]
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        body = api.get(f"/v1/projects/{project.id}/databases/{database.id}").json()
    assert body["status"] == "available"
    assert body["storage_gb"] == 1


def test_protected_database_is_kept_then_deleted(
    client: Client, console_server: ConsoleServer
) -> None:
    project = client.projects.create("kept")
    databases = client.databases(project.id)
    operations = client.operations(project.id)
    created = databases.create("ledger", size="small", storage_gb=1, deletion_protection=True)
    operations.wait(created, timeout=120, poll=0.2)

    with pytest.raises(Conflict) as refused:
        databases.delete(created.resource_id)

    assert refused.value.code == "deletion_protected"
    assert databases.get(created.resource_id).deletion_protection
    assert client.tokens is not None
    # Changing the protection is not in the client yet: the REST API does it.
    with console_server.api(client.tokens.access_token) as api:
        unprotected = api.patch(
            f"/v1/projects/{project.id}/databases/{created.resource_id}",
            json={"deletion_protection": False},
        )
    operations.wait(unprotected.json()["id"], timeout=120, poll=0.2)

    deleted = operations.wait(databases.delete(created.resource_id), timeout=120, poll=0.2)

    assert deleted.type == "delete"
    assert databases.list() == []
    assert databases.get(created.resource_id).status == "deleted"


def test_unknown_database_is_not_found(client: Client) -> None:
    project = client.projects.create("nodb")
    unknown = str(uuid.uuid4())

    with pytest.raises(NotFound) as missing:
        client.databases(project.id).get(unknown)
    with pytest.raises(NotFound) as unrevealed:
        client.databases(project.id).reveal(unknown)

    assert missing.value.code == "database_not_found"
    assert unrevealed.value.code == "database_not_found"
