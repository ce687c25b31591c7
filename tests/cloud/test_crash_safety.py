"""Crash safety of instance creation: a worker SIGKILLed after the provider created an
instance and before Lariba recorded its id is replaced, and the instance converges with
exactly one instance at the provider, on aws (moto) and local."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.core.jobs import libpq_url
from lariba.core.settings import Settings
from lariba.providers.local import LocalCompute
from tests.fixtures.cloud import (
    act,
    cloud_client,
    cloud_settings,
    create_instance,
    get_instance,
    wait_for_operation,
)
from tests.fixtures.identity import create_project, sign_up
from tests.fixtures.moto import dummy_session
from tests.fixtures.usage import running_seconds, usage_by_resource
from tests.fixtures.workers import lariba_workers, local_instances

TAG_RESOURCE_ID = "lariba:resource-id"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]

# (provider id, state) of the live instances the provider holds for one resource.
ProviderInstances = Callable[[str], Awaitable[list[tuple[str, str]]]]


@dataclass
class ProviderUnderTest:
    settings: Settings
    instance: dict[str, Any]
    instances_of: ProviderInstances


def moto_instances_of(endpoint: str) -> ProviderInstances:
    """Asks EC2 (moto) itself, by tag, not through Lariba's provider code."""
    ec2 = dummy_session().client("ec2", endpoint_url=endpoint)

    async def instances_of(resource_id: str) -> list[tuple[str, str]]:
        response = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{TAG_RESOURCE_ID}", "Values": [resource_id]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )
        return [
            (instance["InstanceId"], instance["State"]["Name"])
            for reservation in response["Reservations"]
            for instance in reservation["Instances"]
        ]

    return instances_of


def local_instances_of(compute: LocalCompute) -> ProviderInstances:
    """Looks at the instance directories and processes under the workers' data dir."""

    async def instances_of(resource_id: str) -> list[tuple[str, str]]:
        return [
            (instance.provider_id, instance.state.value)
            for instance in await compute.list_instances(region="local")
            if instance.resource_id == uuid.UUID(resource_id)
        ]

    return instances_of


@pytest.fixture(params=["aws", "local"])
async def target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ProviderUnderTest]:
    if request.param == "aws":
        endpoint: str = request.getfixturevalue("moto_endpoint")
        yield ProviderUnderTest(
            settings=cloud_settings(tmp_path, provider="aws", aws_endpoint_url=endpoint),
            instance={"size": "micro", "image": "amazon-linux-2023"},
            instances_of=moto_instances_of(endpoint),
        )
        return
    settings = cloud_settings(tmp_path, provider="local", local_compute_enabled=True)
    async with local_instances(settings) as compute:
        yield ProviderUnderTest(
            settings=settings,
            instance={"size": "nano", "image": "shell", "user_data": "echo hi\nexec sleep 600\n"},
            instances_of=local_instances_of(compute),
        )


async def _resource(db: AsyncSession, resource_id: str) -> Resource:
    await db.rollback()
    resource = await db.get(Resource, uuid.UUID(resource_id), populate_existing=True)
    assert resource is not None
    return resource


async def _reconcile_jobs(database_url: str, resource_id: str) -> list[tuple[int, str]]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        rows = await connection.execute(
            "SELECT id, status::text FROM procrastinate_jobs WHERE lock = %s ORDER BY id",
            (f"resource:{resource_id}",),
        )
        return [(row[0], row[1]) for row in await rows.fetchall()]


async def _job_events(database_url: str, job_id: int) -> list[str]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        rows = await connection.execute(
            "SELECT type::text FROM procrastinate_events WHERE job_id = %s ORDER BY id",
            (job_id,),
        )
        return [row[0] for row in await rows.fetchall()]


async def test_worker_killed_between_provider_create_and_commit_leaves_one_instance(
    target: ProviderUnderTest, test_database_url: str, db: AsyncSession
) -> None:
    settings = target.settings
    async with cloud_client(settings, test_database_url, run_worker=False) as client:
        with lariba_workers(settings, test_database_url) as workers:
            user = await sign_up(client)
            pid = (await create_project(client, user))["id"]
            [doomed] = await workers.start(failpoints="instance-created")
            created = await create_instance(client, user, pid, name="crash-1", **target.instance)
            iid = created["resource"]["id"]

            # The failpoint fires right after the provider's create call returned.
            assert await doomed.exited(within=30) == -signal.SIGKILL, doomed.output()
            [(provider_id, state)] = await target.instances_of(iid)
            assert state in ("pending", "running")
            resource = await _resource(db, iid)
            assert resource.provider_id is None
            assert resource.create_attempts == 1
            assert resource.status == "provisioning"
            [(stalled_job, status)] = await _reconcile_jobs(test_database_url, iid)
            assert status == "doing"  # the dead worker's job, nobody else's

            await workers.start()
            done = await wait_for_operation(client, user, created, within=30)
            assert done["status"] == "succeeded", (done, workers.logs())

            instance = await get_instance(client, user, pid, iid)
            assert instance["status"] == "running"
            assert instance["provider_id"] == provider_id
            assert await target.instances_of(iid) == [(provider_id, "running")], workers.logs()
            resource = await _resource(db, iid)
            assert resource.provider_id == provider_id
            # Adopted by its tag: the create was never attempted a second time.
            assert resource.create_attempts == 1
            # The live worker took over the dead one's job (no heartbeat for 3 s).
            assert "deferred_for_retry" in await _job_events(test_database_url, stalled_job)

            deleted = await wait_for_operation(
                client, user, await act(client, user, pid, iid, "delete"), within=30
            )
            assert deleted["status"] == "succeeded", (deleted, workers.logs())
            assert await target.instances_of(iid) == []

            # Usage is the time between its events: the dead worker's pass left none.
            [stretch] = await running_seconds(db, iid)
            size = target.instance["size"]
            usage = await usage_by_resource(client, user, pid)
            assert usage == {(iid, "instance", size): stretch.quantize(Decimal("0.000001"))}
