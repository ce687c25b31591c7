"""Provider faults injected at the HTTP level between Lariba and EC2 (a moto server):
throttling, 500s and timeouts are retried until every operation converges; a refusal ends
in ``error`` with EC2's reason; nothing is created twice and nothing retries hot."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from mypy_boto3_ec2.client import EC2Client
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.providers.base import Provider
from tests.fixtures.cloud import (
    act,
    cloud_client,
    cloud_settings,
    create_instance,
    get_instance,
    wait_for_operation,
)
from tests.fixtures.faults import FaultProxy, aws_compute_behind
from tests.fixtures.identity import create_project, sign_up
from tests.fixtures.moto import dummy_session

INSTANCES = 6


def live_instances(ec2: EC2Client) -> list[dict[str, str]]:
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        ]
    )["Reservations"]
    return [
        {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
        | {"InstanceId": instance["InstanceId"], "State": instance["State"]["Name"]}
        for reservation in reservations
        for instance in reservation["Instances"]
    ]


async def test_throttling_500s_and_timeouts_at_30_percent_converge(
    tmp_path: Path,
    test_database_url: str,
    db: AsyncSession,
    fault_proxy: FaultProxy,
    moto_endpoint: str,
) -> None:
    fault_proxy.hold_seconds = 4.0
    compute = aws_compute_behind(fault_proxy, read_timeout_seconds=3.0, max_attempts=2)
    settings = cloud_settings(
        tmp_path, provider="aws", reconcile_max_retries=30, reconcile_retry_max_seconds=1.0
    )
    ec2 = dummy_session().client("ec2", endpoint_url=moto_endpoint)
    async with cloud_client(
        settings, test_database_url, provider=Provider("aws", compute)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        # Warm the AMI lookup (moto's slowest answer) before the faults start.
        first = await create_instance(
            client, user, pid, name="warm", size="micro", image="amazon-linux-2023"
        )
        assert (await wait_for_operation(client, user, first))["status"] == "succeeded"
        fault_proxy.configure(rate=0.3, kinds=("throttle", "server_error", "timeout"), seed=7)

        created = await asyncio.gather(
            *(
                create_instance(
                    client, user, pid, name=f"vm-{i}", size="micro", image="amazon-linux-2023"
                )
                for i in range(INSTANCES)
            )
        )
        results = await asyncio.gather(
            *(wait_for_operation(client, user, op, within=180) for op in created)
        )
        assert [r["status"] for r in results] == ["succeeded"] * INSTANCES, results
        stops = [await act(client, user, pid, op["resource"]["id"], "stop") for op in created]
        results = await asyncio.gather(
            *(wait_for_operation(client, user, op, within=180) for op in stops)
        )
        assert [r["status"] for r in results] == ["succeeded"] * INSTANCES, results
        assert fault_proxy.faults() > 0, "faults were injected"
        fault_proxy.reset()

        for op in created:
            instance = await get_instance(client, user, pid, op["resource"]["id"])
            assert instance["status"] == "stopped"
    # Exactly one EC2 instance per resource, each the one Lariba recorded.
    live = live_instances(ec2)
    recorded = {str(r.id): r.provider_id for r in await db.scalars(select(Resource))}
    assert sorted(i["lariba:resource-id"] for i in live) == sorted(recorded)
    assert {i["lariba:resource-id"]: i["InstanceId"] for i in live} == recorded


async def test_a_refusal_ends_in_error_with_ec2s_reason_after_one_attempt(
    tmp_path: Path, test_database_url: str, fault_proxy: FaultProxy, moto_endpoint: str
) -> None:
    compute = aws_compute_behind(fault_proxy)
    settings = cloud_settings(tmp_path, provider="aws")
    async with cloud_client(
        settings, test_database_url, provider=Provider("aws", compute)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        fault_proxy.fail_next(
            "RunInstances",
            "permanent",
            code="InvalidParameterCombination",
            message="The instance type is not supported in this zone",
        )
        created = await create_instance(
            client, user, pid, name="vm", size="micro", image="amazon-linux-2023"
        )
        done = await wait_for_operation(client, user, created)
        assert done["status"] == "failed"
        assert done["error"]["code"] == "InvalidParameterCombination"
        instance = await get_instance(client, user, pid, created["resource"]["id"])
        assert instance["status"] == "error"
        assert "not supported in this zone" in instance["status_reason"]
        await asyncio.sleep(1.0)
        assert fault_proxy.attempts("RunInstances") == 1, "a refusal is never retried"
    assert live_instances(dummy_session().client("ec2", endpoint_url=moto_endpoint)) == []


async def test_throttled_retries_back_off_instead_of_hammering(
    tmp_path: Path, test_database_url: str, fault_proxy: FaultProxy
) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=1)
    settings = cloud_settings(
        tmp_path,
        provider="aws",
        reconcile_retry_base_seconds=0.2,
        reconcile_retry_max_seconds=0.8,
    )
    async with cloud_client(
        settings, test_database_url, provider=Provider("aws", compute)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        fault_proxy.fail_next("RunInstances", "throttle", times=5)
        created = await create_instance(
            client, user, pid, name="vm", size="micro", image="amazon-linux-2023"
        )
        assert (await wait_for_operation(client, user, created))["status"] == "succeeded"
    times = fault_proxy.attempt_times("RunInstances")
    assert len(times) == 6
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Each wait is at least half its ceiling: 0.1, 0.2, 0.4, 0.4, 0.4 seconds.
    for retry, gap in enumerate(gaps, start=1):
        assert gap >= min(0.8, 0.2 * 2 ** (retry - 1)) / 2 * 0.9, gaps
