"""``AsyncClient`` runs the same calls as ``Client``, awaited."""

from __future__ import annotations

import uuid

import pytest

from lariba.client import AsyncClient, ConnectionFailed, InvalidInput, NotFound
from tests.client.conftest import RUN_FOREVER, Account
from tests.fixtures.console import ConsoleServer
from tests.fixtures.serve import free_port


async def test_async_client_creates_lists_and_stops_an_instance(
    console_server: ConsoleServer, account: Account
) -> None:
    async with AsyncClient(
        console_server.url, email=account.email, password=account.password
    ) as client:
        assert (await client.me()).email == account.email
        project = await client.projects.create("async")
        instances = client.instances(project.id)
        operations = client.operations(project.id)
        for name in ("web-1", "web-2", "web-3"):
            await operations.wait(
                await instances.create(
                    name=name, size="nano", image="shell", user_data=RUN_FOREVER
                ),
                timeout=60,
                poll=0.2,
            )

        listed = await instances.list(page_size=2)
        stopped = await operations.wait(await instances.stop(listed[0].id), timeout=60, poll=0.2)
        after = await instances.get(listed[0].id)
        with pytest.raises(NotFound) as missing:
            await instances.get(str(uuid.uuid4()))
        with pytest.raises(InvalidInput) as invalid:
            await instances.resize(listed[1].id, "")

        assert [i.name for i in listed] == ["web-1", "web-2", "web-3"]
        assert stopped.status == "succeeded"
        assert after.status == "stopped"
        assert [i.name for i in await instances.list(status="running")] == ["web-2", "web-3"]
        assert missing.value.code == "instance_not_found"
        assert invalid.value.status == 422
        assert client.tokens is not None
        token = client.tokens.access_token
    with console_server.api(token) as api:
        body = api.get(f"/v1/projects/{project.id}/instances", params={"status": "stopped"})
    assert [i["name"] for i in body.json()["items"]] == ["web-1"]


async def test_async_unreachable_server_names_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async with AsyncClient(url, token="lrb_unused") as client:
        with pytest.raises(ConnectionFailed) as raised:
            await client.projects.list()

    assert url in str(raised.value)
