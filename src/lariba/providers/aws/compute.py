"""EC2 instances behind the ``ComputeProvider`` contract."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import boto3
import structlog

from lariba.providers.aws.client import (
    CONNECT_TIMEOUT_SECONDS,
    MAX_ATTEMPTS,
    READ_TIMEOUT_SECONDS,
    RegionalClients,
    call,
)
from lariba.providers.aws.images import AmiResolver
from lariba.providers.aws.network import (
    default_vpc,
    delete_instance_network,
    ensure_key_pair,
    ensure_security_group,
    resource_name,
)
from lariba.providers.base import (
    TAG_PROJECT_ID,
    TAG_RESOURCE_ID,
    InstanceSpec,
    InstanceState,
    ObservedInstance,
    PermanentProviderError,
    ProviderNotFound,
)
from lariba.providers.catalog import Catalog

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.literals import InstanceTypeType
    from mypy_boto3_ec2.type_defs import (
        FilterTypeDef,
        InstanceTypeDef,
        RunInstancesRequestTypeDef,
        TagTypeDef,
    )

log = structlog.get_logger(__name__)

LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


class AwsCompute:
    """EC2 in the catalog's regions. ``session`` carries credentials (tests pass dummy ones);
    unset, boto3's usual chain applies (environment, profile, instance role). The timeouts
    bound each attempt; ``max_attempts`` counts the first one."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._catalog = catalog
        self._clients: RegionalClients[EC2Client] = RegionalClients(
            "ec2",
            session=session,
            endpoint_url=endpoint_url,
            connect_timeout_seconds=connect_timeout_seconds,
            read_timeout_seconds=read_timeout_seconds,
            max_attempts=max_attempts,
        )
        self._amis = AmiResolver()
        self._vpcs: dict[str, str] = {}

    def warm_up(self, regions: Sequence[str]) -> None:
        self._clients.warm(regions)

    def _client(self, region: str) -> EC2Client:
        if self._catalog.region(region) is None:
            raise PermanentProviderError(
                f"region {region!r} is not in the aws catalog", code="UnknownRegion"
            )
        return self._clients.region(region)

    async def create_instance(self, spec: InstanceSpec) -> ObservedInstance:
        client = self._client(spec.region)
        size = self._catalog.size(spec.size)
        instance_type = size.provider.get("instance_type") if size else None
        if not isinstance(instance_type, str):
            raise PermanentProviderError(
                f"size {spec.size!r} is not in the aws catalog", code="UnknownSize"
            )
        image = self._catalog.image(spec.image)
        if image is None:
            raise PermanentProviderError(
                f"image {spec.image!r} is not in the aws catalog", code="UnknownImage"
            )
        ami = await self._amis.resolve(client=client, image=image, region=spec.region)

        name = resource_name(str(spec.resource_id))
        tags: list[TagTypeDef] = [
            {"Key": TAG_RESOURCE_ID, "Value": str(spec.resource_id)},
            {"Key": TAG_PROJECT_ID, "Value": str(spec.project_id)},
            {"Key": "Name", "Value": spec.name},
        ]
        if spec.region not in self._vpcs:
            self._vpcs[spec.region] = await default_vpc(client, spec.region)
        group_id = await ensure_security_group(
            client=client,
            name=name,
            vpc_id=self._vpcs[spec.region],
            firewall=spec.firewall,
            tags=tags,
        )
        if spec.ssh_public_key:
            await ensure_key_pair(
                client=client, name=name, public_key=spec.ssh_public_key, tags=tags
            )

        request: RunInstancesRequestTypeDef = {
            "ImageId": ami,
            "InstanceType": cast("InstanceTypeType", instance_type),
            "MinCount": 1,
            "MaxCount": 1,
            # An explicit interface is the only way to say "no public address" even in
            # subnets that map one on launch; the group goes on it, not on the instance.
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": spec.public_ip,
                    "Groups": [group_id],
                    "DeleteOnTermination": True,
                }
            ],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            # EC2 answers a repeated token with the instance it already launched, so even
            # a create whose answer was lost cannot launch a second one there.
            "ClientToken": str(spec.resource_id),
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        if spec.user_data:
            request["UserData"] = spec.user_data
        if spec.ssh_public_key:
            request["KeyName"] = name
        response = await call(lambda: client.run_instances(**request))
        observed = self._observe(response["Instances"][0], spec.region)
        log.info(
            "aws_instance_created",
            resource_id=str(spec.resource_id),
            provider_id=observed.provider_id,
            region=spec.region,
        )
        return observed

    async def find_instance(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedInstance | None:
        found = await self._describe_live(
            region, [{"Name": f"tag:{TAG_RESOURCE_ID}", "Values": [str(resource_id)]}]
        )
        if not found:
            return None
        found.sort(key=lambda i: (i.launched_at or datetime.max.replace(tzinfo=UTC), i.provider_id))
        if len(found) > 1:
            log.warning(
                "aws_duplicate_instances",
                resource_id=str(resource_id),
                provider_ids=[i.provider_id for i in found],
            )
        return found[0]

    async def describe_instance(self, *, region: str, provider_id: str) -> ObservedInstance:
        return self._observe(await self._describe_one(region, provider_id), region)

    async def start_instance(self, *, region: str, provider_id: str) -> None:
        client = self._client(region)
        await call(lambda: client.start_instances(InstanceIds=[provider_id]))

    async def stop_instance(self, *, region: str, provider_id: str) -> None:
        client = self._client(region)
        await call(lambda: client.stop_instances(InstanceIds=[provider_id]))

    async def reboot_instance(self, *, region: str, provider_id: str) -> None:
        client = self._client(region)
        await call(lambda: client.reboot_instances(InstanceIds=[provider_id]))

    async def resize_instance(self, *, region: str, provider_id: str, size: str) -> None:
        client = self._client(region)
        entry = self._catalog.size(size)
        instance_type = entry.provider.get("instance_type") if entry else None
        if not isinstance(instance_type, str):
            raise PermanentProviderError(
                f"size {size!r} is not in the aws catalog", code="UnknownSize"
            )
        state = (await self._describe_one(region, provider_id)).get("State", {}).get("Name")
        if state != "stopped":
            raise PermanentProviderError(
                f"instance {provider_id} is {state}; stop it before changing its size",
                code="IncorrectInstanceState",
            )
        await call(
            lambda: client.modify_instance_attribute(
                InstanceId=provider_id, InstanceType={"Value": instance_type}
            )
        )

    async def terminate_instance(self, *, region: str, provider_id: str) -> None:
        client = self._client(region)
        try:
            instance = await self._describe_one(region, provider_id)
        except ProviderNotFound:
            return
        # Terminating again is harmless at AWS but moto fails on it; the describe also
        # gives the tag that names the key pair and group to clean up.
        if instance.get("State", {}).get("Name") != "terminated":
            try:
                await call(lambda: client.terminate_instances(InstanceIds=[provider_id]))
            except ProviderNotFound:
                return
        resource_id = _tags(instance).get(TAG_RESOURCE_ID)
        if resource_id is None:
            return
        # A duplicate launched for the same resource shares the key pair and group.
        others = await self._describe_live(
            region, [{"Name": f"tag:{TAG_RESOURCE_ID}", "Values": [resource_id]}]
        )
        if any(o.provider_id != provider_id for o in others):
            return
        await delete_instance_network(client=client, resource_id=resource_id)

    async def console_output(self, *, region: str, provider_id: str) -> str:
        client = self._client(region)
        # botocore already base64-decodes Output for GetConsoleOutput.
        response = await call(lambda: client.get_console_output(InstanceId=provider_id))
        return response.get("Output") or ""

    async def list_instances(self, *, region: str) -> list[ObservedInstance]:
        return await self._describe_live(region, [{"Name": "tag-key", "Values": [TAG_RESOURCE_ID]}])

    async def _describe_one(self, region: str, provider_id: str) -> InstanceTypeDef:
        client = self._client(region)
        response = await call(lambda: client.describe_instances(InstanceIds=[provider_id]))
        for reservation in response.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                return instance
        raise ProviderNotFound(
            f"instance {provider_id} does not exist", code="InvalidInstanceID.NotFound"
        )

    async def _describe_live(
        self, region: str, filters: list[FilterTypeDef]
    ) -> list[ObservedInstance]:
        client = self._client(region)
        paginator = client.get_paginator("describe_instances")
        all_filters: list[FilterTypeDef] = [
            *filters,
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]
        instances = await call(
            lambda: [
                instance
                for page in paginator.paginate(Filters=all_filters)
                for reservation in page.get("Reservations", [])
                for instance in reservation.get("Instances", [])
            ]
        )
        return [self._observe(instance, region) for instance in instances]

    def _observe(self, instance: InstanceTypeDef, region: str) -> ObservedInstance:
        tags = _tags(instance)
        instance_type = instance.get("InstanceType")
        size = next(
            (
                s.name
                for s in self._catalog.sizes
                if s.provider.get("instance_type") == instance_type
            ),
            instance_type,
        )
        extra = {
            key: str(value)
            for key, value in (
                ("instance_type", instance_type),
                ("image_id", instance.get("ImageId")),
                ("availability_zone", instance.get("Placement", {}).get("AvailabilityZone")),
            )
            if value
        }
        return ObservedInstance(
            provider_id=instance["InstanceId"],
            region=region,
            state=InstanceState(instance.get("State", {}).get("Name", "pending")),
            size=size,
            resource_id=_uuid(tags.get(TAG_RESOURCE_ID)),
            project_id=_uuid(tags.get(TAG_PROJECT_ID)),
            private_ip=instance.get("PrivateIpAddress") or None,
            public_ip=instance.get("PublicIpAddress") or None,
            launched_at=instance.get("LaunchTime"),
            extra=extra,
        )


def _tags(instance: InstanceTypeDef) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", []) if "Key" in t and "Value" in t}


def _uuid(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
