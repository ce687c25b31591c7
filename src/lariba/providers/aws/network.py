"""The per-instance key pair and security group, both named ``lariba-<resource id>``,
created or brought in line with the spec on every create."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from lariba.providers.aws.client import call
from lariba.providers.base import FirewallRule, PermanentProviderError, ProviderError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.type_defs import (
        IpPermissionOutputTypeDef,
        IpPermissionTypeDef,
        TagTypeDef,
    )

log = structlog.get_logger(__name__)

# (IpProtocol, FromPort, ToPort, CIDR): one ingress grant, comparable across API shapes.
Grant = tuple[str, int | None, int | None, str]


def resource_name(resource_id: str) -> str:
    return f"lariba-{resource_id}"


def grant_of(rule: FirewallRule) -> Grant:
    if rule.protocol == "all":
        return ("-1", None, None, rule.cidr)
    if rule.protocol == "icmp":
        # EC2 spells "every ICMP type/code" as -1.
        return (
            "icmp",
            -1 if rule.port_from is None else rule.port_from,
            -1 if rule.port_to is None else rule.port_to,
            rule.cidr,
        )
    port_from = 0 if rule.port_from is None else rule.port_from
    port_to = 65535 if rule.port_to is None else rule.port_to
    return (rule.protocol, port_from, port_to, rule.cidr)


def permission_of(grant: Grant) -> IpPermissionTypeDef:
    protocol, port_from, port_to, cidr = grant
    permission: IpPermissionTypeDef = {"IpProtocol": protocol}
    if port_from is not None and port_to is not None:
        permission["FromPort"] = port_from
        permission["ToPort"] = port_to
    if ":" in cidr:
        permission["Ipv6Ranges"] = [{"CidrIpv6": cidr}]
    else:
        permission["IpRanges"] = [{"CidrIp": cidr}]
    return permission


def grants_of(permissions: Sequence[IpPermissionTypeDef | IpPermissionOutputTypeDef]) -> set[Grant]:
    grants: set[Grant] = set()
    for permission in permissions:
        protocol = permission.get("IpProtocol", "-1")
        ports = (
            (None, None)
            if protocol == "-1"
            else (permission.get("FromPort"), permission.get("ToPort"))
        )
        for ipv4 in permission.get("IpRanges", []):
            grants.add((protocol, *ports, ipv4.get("CidrIp", "")))
        for ipv6 in permission.get("Ipv6Ranges", []):
            grants.add((protocol, *ports, ipv6.get("CidrIpv6", "")))
    return grants


async def ensure_key_pair(
    *, client: EC2Client, name: str, public_key: str, tags: list[TagTypeDef]
) -> None:
    """Imports the key; a key pair of that name already there (a create retried after a
    crash, or a concurrent one) is the same key and is reused."""
    try:
        await call(
            lambda: client.import_key_pair(
                KeyName=name,
                PublicKeyMaterial=public_key.encode(),
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}],
            )
        )
    except PermanentProviderError as exc:
        if exc.code != "InvalidKeyPair.Duplicate":
            raise


async def default_vpc(client: EC2Client, region: str) -> str:
    response = await call(
        lambda: client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])
    )
    vpcs = [v["VpcId"] for v in response.get("Vpcs", []) if "VpcId" in v]
    if not vpcs:
        raise PermanentProviderError(f"region {region!r} has no default VPC", code="NoDefaultVpc")
    return vpcs[0]


async def _find_group(client: EC2Client, *, name: str, vpc_id: str) -> str | None:
    response = await call(
        lambda: client.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [name]},
                {"Name": "vpc-id", "Values": [vpc_id]},
            ]
        )
    )
    groups = [g["GroupId"] for g in response.get("SecurityGroups", []) if "GroupId" in g]
    return groups[0] if groups else None


async def ensure_security_group(
    *,
    client: EC2Client,
    name: str,
    vpc_id: str,
    firewall: tuple[FirewallRule, ...],
    tags: list[TagTypeDef],
) -> str:
    """The group's id, its ingress set to exactly the spec's rules (egress left open).
    Creating comes first: on a first attempt the group cannot exist yet, so that is two
    calls at most; only a retry finds it there and compares its rules."""
    try:
        created = await call(
            lambda: client.create_security_group(
                GroupName=name,
                Description="Lariba instance firewall",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
            )
        )
    except PermanentProviderError as exc:
        if exc.code != "InvalidGroup.Duplicate":
            raise
        group_id = await _find_group(client, name=name, vpc_id=vpc_id)
        if group_id is None:
            raise
        await _match_ingress(client, group_id=group_id, firewall=firewall)
        return group_id
    group_id = created["GroupId"]
    wanted = sorted({grant_of(rule) for rule in firewall}, key=str)
    if wanted:
        await call(
            lambda: client.authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=[permission_of(g) for g in wanted]
            )
        )
    return group_id


async def _match_ingress(
    client: EC2Client, *, group_id: str, firewall: tuple[FirewallRule, ...]
) -> None:
    response = await call(lambda: client.describe_security_groups(GroupIds=[group_id]))
    current = grants_of(response["SecurityGroups"][0].get("IpPermissions", []))
    wanted = {grant_of(rule) for rule in firewall}
    extra = sorted(current - wanted, key=str)
    missing = sorted(wanted - current, key=str)
    if extra:
        try:
            await call(
                lambda: client.revoke_security_group_ingress(
                    GroupId=group_id, IpPermissions=[permission_of(g) for g in extra]
                )
            )
        except PermanentProviderError as exc:
            if exc.code != "InvalidPermission.NotFound":
                raise
    if missing:
        try:
            await call(
                lambda: client.authorize_security_group_ingress(
                    GroupId=group_id, IpPermissions=[permission_of(g) for g in missing]
                )
            )
        except PermanentProviderError as exc:
            if exc.code != "InvalidPermission.Duplicate":
                raise


async def _delete_group(client: EC2Client, group_id: str) -> None:
    await call(lambda: client.delete_security_group(GroupId=group_id))


async def delete_instance_network(*, client: EC2Client, resource_id: str) -> None:
    """Best effort: the group cannot go while the terminating instance still holds it, so a
    later terminate (the reconciler repeats it) finishes the job. Never raises."""
    name = resource_name(resource_id)
    try:
        await call(lambda: client.delete_key_pair(KeyName=name))
    except ProviderError as exc:
        log.warning("aws_key_pair_cleanup_failed", key_name=name, code=exc.code)
    try:
        response = await call(
            lambda: client.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": [name]}]
            )
        )
        for group_id in [
            g["GroupId"] for g in response.get("SecurityGroups", []) if "GroupId" in g
        ]:
            await _delete_group(client, group_id)
    except ProviderError as exc:
        log.info("aws_security_group_cleanup_deferred", group_name=name, code=exc.code)
