"""Instances end to end through HTTP on the local provider: real processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Operation, Resource, ResourceEvent
from tests.fixtures.cloud import (
    act,
    cloud_client,
    cloud_settings,
    create_instance,
    get_instance,
    wait_for_operation,
)
from tests.fixtures.identity import create_project, sign_up

SCRIPT = 'echo "hello from $LARIBA_INSTANCE_ID on port $PORT"\nexec sleep 600\n'


async def test_instance_lifecycle_end_to_end(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    settings = cloud_settings(tmp_path, local_compute_enabled=True)
    async with cloud_client(settings, test_database_url) as client:
        user = await sign_up(client)
        project = await create_project(client, user)
        pid = project["id"]

        created = await create_instance(
            client, user, pid, name="web-1", size="nano", user_data=SCRIPT, labels={"env": "dev"}
        )
        assert created["status"] == "pending"
        iid = created["resource"]["id"]
        done = await wait_for_operation(client, user, created)
        assert done["status"] == "succeeded", done
        instance = await get_instance(client, user, pid, iid)
        assert instance["status"] == "running"
        assert instance["observed_generation"] == instance["generation"] == 1
        assert instance["addresses"]["private_ip"] == "127.0.0.1"
        port = instance["addresses"]["port"]
        assert isinstance(port, int)

        console = ""
        for _ in range(50):
            response = await client.get(
                f"/v1/projects/{pid}/instances/{iid}/console", headers=user.headers
            )
            console = response.json()["output"]
            if "hello" in console:
                break
            await asyncio.sleep(0.1)
        assert f"hello from {iid} on port {port}" in console

        stopped = await wait_for_operation(client, user, await act(client, user, pid, iid, "stop"))
        assert stopped["status"] == "succeeded", stopped
        assert (await get_instance(client, user, pid, iid))["status"] == "stopped"

        started = await wait_for_operation(client, user, await act(client, user, pid, iid, "start"))
        assert started["status"] == "succeeded", started
        assert (await get_instance(client, user, pid, iid))["status"] == "running"

        resized = await wait_for_operation(
            client, user, await act(client, user, pid, iid, "resize", {"size": "small"})
        )
        assert resized["status"] == "succeeded", resized
        instance = await get_instance(client, user, pid, iid)
        assert (instance["status"], instance["size"]) == ("running", "small")

        deleted = await wait_for_operation(
            client, user, await act(client, user, pid, iid, "delete")
        )
        assert deleted["status"] == "succeeded", deleted
        instance = await get_instance(client, user, pid, iid)
        assert instance["status"] == "deleted"
        listed = await client.get(f"/v1/projects/{pid}/instances", headers=user.headers)
        assert listed.json()["items"] == []

    resource = await db.scalar(select(Resource).where(Resource.name == "web-1"))
    assert resource is not None and resource.status == "deleted"
    operations = (
        await db.scalars(
            select(Operation.type)
            .where(Operation.resource_id == resource.id)
            .order_by(Operation.created_at)
        )
    ).all()
    assert operations == ["create", "stop", "start", "resize", "delete"]
    transitions = (
        await db.execute(
            select(ResourceEvent.from_status, ResourceEvent.to_status)
            .where(ResourceEvent.resource_id == resource.id)
            .order_by(ResourceEvent.id)
        )
    ).all()
    assert ("pending", "provisioning") in transitions
    assert ("provisioning", "running") in transitions or ("pending", "running") in transitions
    assert transitions[-1] == ("deleting", "deleted")
    # No process of the instance is left on the machine.
    assert not [p for p in psutil.process_iter(["environ"]) if _is_instance(p, str(resource.id))]


def _is_instance(process: psutil.Process, instance_id: str) -> bool:
    try:
        environ = process.info.get("environ") or {}
    except (psutil.Error, AttributeError):
        return False
    return environ.get("LARIBA_INSTANCE_ID") == instance_id
