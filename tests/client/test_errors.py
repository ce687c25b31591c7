"""Failed calls raise typed errors carrying the API's problem code, field errors and
request id; an unreachable server is named in the error."""

from __future__ import annotations

import uuid

import httpx
import pytest

from lariba.client import (
    Client,
    Conflict,
    ConnectionFailed,
    FieldError,
    InvalidInput,
    LaribaError,
    NotFound,
    Unauthorized,
)
from tests.client.conftest import Account
from tests.fixtures.console import ConsoleServer
from tests.fixtures.serve import free_port


def test_unknown_instance_is_not_found(client: Client) -> None:
    project = client.projects.create("lookup")
    unknown = str(uuid.uuid4())

    with pytest.raises(NotFound) as raised:
        client.instances(project.id).get(unknown)

    error = raised.value
    assert error.status == 404
    assert error.code == "instance_not_found"
    assert unknown in error.detail
    assert error.request_id


def test_bad_input_names_the_field(client: Client, console_server: ConsoleServer) -> None:
    project = client.projects.create("input")

    with pytest.raises(InvalidInput) as raised:
        client.instances(project.id).create(name="Not A Name", size="nano", image="shell")

    error = raised.value
    assert error.status == 422
    assert error.code == "validation_failed"
    assert [e.field for e in error.errors] == ["name"]
    assert isinstance(error.errors[0], FieldError)
    assert client.instances(project.id).list() == []
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        assert api.get(f"/v1/projects/{project.id}/operations").json()["items"] == []


def test_wrong_password_is_unauthorized(console_server: ConsoleServer, account: Account) -> None:
    with Client(console_server.url, email=account.email, password="not-the-password-1") as client:
        with pytest.raises(Unauthorized) as raised:
            client.me()

        assert raised.value.status == 401
        assert raised.value.code == "invalid_credentials"
        assert client.tokens is None
    # The right password still logs in: one failure does not lock the account.
    with Client(console_server.url, email=account.email, password=account.password) as client:
        assert client.me().email == account.email


def test_taken_email_is_a_conflict(console_server: ConsoleServer, account: Account) -> None:
    with Client(console_server.url) as anonymous, pytest.raises(Conflict) as raised:
        anonymous.sign_up(email=account.email, password=account.password)

    assert raised.value.status == 409
    assert isinstance(raised.value, LaribaError)


def test_unreachable_server_names_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with Client(url, token="lrb_unused") as client, pytest.raises(ConnectionFailed) as raised:
        client.me()

    assert raised.value.url == url
    assert raised.value.status is None
    assert raised.value.code == "connection_failed"
    assert url in str(raised.value)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_project_lifecycle(client: Client, console_server: ConsoleServer) -> None:
    project = client.projects.create("  temp  ", description="short-lived")

    assert project.name == "temp"
    assert project.role == "owner"
    assert client.projects.get(project.id) == project
    assert project.id in [p.id for p in client.projects.list()]

    client.projects.delete(project.id)

    assert project.id not in [p.id for p in client.projects.list()]
    with pytest.raises(NotFound) as raised:
        client.projects.get(project.id)
    assert raised.value.code == "project_not_found"
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        assert api.get(f"/v1/projects/{project.id}").status_code == 404
