"""Instances end to end through HTTP on the aws provider, against a moto server."""

from __future__ import annotations

from pathlib import Path

from mypy_boto3_ec2.client import EC2Client
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.providers.aws import AwsCompute
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
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


def aws_provider(endpoint: str) -> Provider:
    return Provider(
        name="aws",
        compute=AwsCompute(
            catalog=load_catalog("aws"), endpoint_url=endpoint, session=dummy_session()
        ),
    )


def live_instances(ec2: EC2Client) -> list[dict[str, object]]:
    pages = ec2.describe_instances(
        Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        ]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]  # type: ignore[misc]


async def test_instance_lifecycle_end_to_end(
    tmp_path: Path, test_database_url: str, db: AsyncSession, moto_endpoint: str
) -> None:
    settings = cloud_settings(tmp_path, provider="aws", aws_endpoint_url=moto_endpoint)
    ec2 = dummy_session().client("ec2", endpoint_url=moto_endpoint)
    async with cloud_client(
        settings, test_database_url, provider=aws_provider(moto_endpoint)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(
            client,
            user,
            pid,
            name="api-1",
            size="micro",
            image="amazon-linux-2023",
            user_data="#!/bin/sh\necho hi\n",
            firewall=[{"protocol": "tcp", "port_from": 22, "cidr": "203.0.113.0/24"}],
        )
        iid = created["resource"]["id"]
        done = await wait_for_operation(client, user, created)
        assert done["status"] == "succeeded", done
        instance = await get_instance(client, user, pid, iid)
        assert instance["status"] == "running"
        assert instance["addresses"]["private_ip"]
        assert instance["addresses"]["public_ip"] is None
        [ec2_instance] = live_instances(ec2)
        assert ec2_instance["InstanceId"] == instance["provider_id"]
        assert ec2_instance["MetadataOptions"]["HttpTokens"] == "required"  # type: ignore[index]
        tags = {t["Key"]: t["Value"] for t in ec2_instance["Tags"]}  # type: ignore[attr-defined]
        assert tags["lariba:resource-id"] == iid
        assert tags["lariba:project-id"] == pid

        for action, body, status in (
            ("stop", None, "stopped"),
            ("start", None, "running"),
            ("resize", {"size": "small"}, "running"),
            ("reboot", None, "running"),
        ):
            result = await wait_for_operation(
                client, user, await act(client, user, pid, iid, action, body)
            )
            assert result["status"] == "succeeded", (action, result)
            assert (await get_instance(client, user, pid, iid))["status"] == status, action
        [ec2_instance] = live_instances(ec2)
        assert ec2_instance["InstanceType"] == "t3.small"

        deleted = await wait_for_operation(
            client, user, await act(client, user, pid, iid, "delete")
        )
        assert deleted["status"] == "succeeded", deleted
        assert (await get_instance(client, user, pid, iid))["status"] == "deleted"
        assert live_instances(ec2) == []

    resource = await db.scalar(select(Resource).where(Resource.name == "api-1"))
    assert resource is not None and resource.status == "deleted"
