"""AwsCompute against a real moto server over HTTP: what it creates at EC2, the instance
life cycle, and how failures are classified."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import uuid

import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from mypy_boto3_ec2.client import EC2Client

from lariba.providers.aws import AwsCompute
from lariba.providers.aws.errors import classify
from lariba.providers.base import (
    TAG_PROJECT_ID,
    TAG_RESOURCE_ID,
    FirewallRule,
    InstanceSpec,
    InstanceState,
    PermanentProviderError,
    ProviderNotFound,
    TransientProviderError,
)
from lariba.providers.catalog import Catalog, Image
from tests.providers.aws.conftest import REGION, dummy_session, free_port

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl lariba"
SSH_RULE = FirewallRule(protocol="tcp", port_from=22, port_to=22, cidr="203.0.113.0/24")
PING_RULE = FirewallRule(protocol="icmp", port_from=None, port_to=None, cidr="0.0.0.0/0")


def make_spec(**changes: object) -> InstanceSpec:
    spec = InstanceSpec(
        resource_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        name="web-1",
        region=REGION,
        size="micro",
        image="amazon-linux-2023",
        user_data="#!/bin/sh\necho hello\n",
        ssh_public_key=SSH_KEY,
        firewall=(SSH_RULE, PING_RULE),
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def raw_instance(ec2: EC2Client, instance_id: str) -> dict[str, object]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


def ingress_of(ec2: EC2Client, group_name: str) -> set[tuple[str, int | None, int | None, str]]:
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name]}])[
        "SecurityGroups"
    ]
    assert len(groups) == 1
    return {
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIp"])
        for p in groups[0].get("IpPermissions", [])
        for r in p.get("IpRanges", [])
    }


async def test_created_instance_is_tagged_imdsv2_only_and_private(
    compute: AwsCompute, ec2: EC2Client
) -> None:
    spec = make_spec()

    observed = await compute.create_instance(spec)

    assert observed.provider_id.startswith("i-")
    assert observed.state in {InstanceState.pending, InstanceState.running}
    assert observed.size == "micro"
    assert observed.resource_id == spec.resource_id
    assert observed.project_id == spec.project_id
    assert observed.private_ip
    assert observed.public_ip is None
    assert observed.launched_at is not None
    instance = ec2.describe_instances(InstanceIds=[observed.provider_id])["Reservations"][0][
        "Instances"
    ][0]
    assert instance["InstanceType"] == "t3.micro"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["MetadataOptions"]["HttpEndpoint"] == "enabled"
    assert "PublicIpAddress" not in instance
    assert instance["KeyName"] == f"lariba-{spec.resource_id}"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {
        TAG_RESOURCE_ID: str(spec.resource_id),
        TAG_PROJECT_ID: str(spec.project_id),
        "Name": "web-1",
    }
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert {t["Key"]: t["Value"] for t in volume["Tags"]} == tags
    user_data = ec2.describe_instance_attribute(
        InstanceId=observed.provider_id, Attribute="userData"
    )["UserData"]["Value"]
    assert base64.b64decode(user_data).decode() == spec.user_data


async def test_create_imports_key_pair_and_opens_only_the_firewall_rules(
    compute: AwsCompute, ec2: EC2Client
) -> None:
    spec = make_spec()

    observed = await compute.create_instance(spec)

    name = f"lariba-{spec.resource_id}"
    key_pairs = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert [k["KeyName"] for k in key_pairs] == [name]
    assert ingress_of(ec2, name) == {
        ("tcp", 22, 22, "203.0.113.0/24"),
        ("icmp", -1, -1, "0.0.0.0/0"),
    }
    instance = ec2.describe_instances(InstanceIds=[observed.provider_id])["Reservations"][0][
        "Instances"
    ][0]
    assert [g["GroupName"] for g in instance["NetworkInterfaces"][0]["Groups"]] == [name]


async def test_create_again_reuses_key_pair_and_matches_group_to_new_rules(
    compute: AwsCompute, ec2: EC2Client
) -> None:
    spec = make_spec()
    await compute.create_instance(spec)
    web = FirewallRule(protocol="tcp", port_from=443, port_to=443, cidr="0.0.0.0/0")
    office = FirewallRule(protocol="all", port_from=None, port_to=None, cidr="198.51.100.7/32")
    web6 = FirewallRule(protocol="udp", port_from=None, port_to=None, cidr="2001:db8::/32")

    # A create retried after a crash, with the rules changed meanwhile.
    await compute.create_instance(dataclasses.replace(spec, firewall=(web, office, web6)))

    name = f"lariba-{spec.resource_id}"
    assert len(ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]) == 1
    assert ingress_of(ec2, name) == {
        ("tcp", 443, 443, "0.0.0.0/0"),
        ("-1", None, None, "198.51.100.7/32"),
    }
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])[
        "SecurityGroups"
    ][0]
    assert [
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIpv6"])
        for p in group["IpPermissions"]
        for r in p.get("Ipv6Ranges", [])
    ] == [("udp", 0, 65535, "2001:db8::/32")]


async def test_public_ip_only_when_asked(compute: AwsCompute) -> None:
    observed = await compute.create_instance(make_spec(public_ip=True))

    assert observed.public_ip is not None


async def test_create_without_ssh_key_sets_no_key_pair(compute: AwsCompute, ec2: EC2Client) -> None:
    observed = await compute.create_instance(make_spec(ssh_public_key=None, user_data=None))

    assert "KeyName" not in raw_instance(ec2, observed.provider_id)
    assert ec2.describe_key_pairs()["KeyPairs"] == []


async def test_explicit_per_region_ami_wins_over_name_lookup(
    catalog: Catalog, moto_endpoint: str, ec2: EC2Client
) -> None:
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    pinned = Image(
        name="pinned",
        display_name="Pinned",
        provider={"ami": {REGION: ami}, "ami_name": "no-such-name-*", "owner": "amazon"},
    )
    compute = AwsCompute(
        catalog=dataclasses.replace(catalog, images=(pinned,)),
        endpoint_url=moto_endpoint,
        session=dummy_session(),
    )

    observed = await compute.create_instance(make_spec(image="pinned"))

    assert observed.extra["image_id"] == ami


async def test_image_lookup_picks_newest_matching_ami(compute: AwsCompute, ec2: EC2Client) -> None:
    images = ec2.describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["al2023-ami-2023.*-x86_64"]}]
    )["Images"]
    newest = max(images, key=lambda i: (i["CreationDate"], i["ImageId"]))["ImageId"]

    observed = await compute.create_instance(make_spec())

    assert observed.extra["image_id"] == newest


async def test_image_without_ami_in_region_is_permanent(
    catalog: Catalog, moto_endpoint: str
) -> None:
    unmapped = Image(name="pinned", display_name="Pinned", provider={"ami": {"eu-west-1": "x"}})
    compute = AwsCompute(
        catalog=dataclasses.replace(catalog, images=(unmapped,)),
        endpoint_url=moto_endpoint,
        session=dummy_session(),
    )

    with pytest.raises(PermanentProviderError) as caught:
        await compute.create_instance(make_spec(image="pinned"))
    assert caught.value.code == "ImageNotMapped"


async def test_image_pattern_matching_nothing_is_permanent(
    catalog: Catalog, moto_endpoint: str
) -> None:
    nothing = Image(
        name="gone", display_name="Gone", provider={"ami_name": "no-such-*", "owner": "amazon"}
    )
    compute = AwsCompute(
        catalog=dataclasses.replace(catalog, images=(nothing,)),
        endpoint_url=moto_endpoint,
        session=dummy_session(),
    )

    with pytest.raises(PermanentProviderError) as caught:
        await compute.create_instance(make_spec(image="gone"))
    assert caught.value.code == "ImageNotFound"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"size": "gigantic"}, "UnknownSize"),
        ({"image": "windows-95"}, "UnknownImage"),
        ({"region": "mars-north-1"}, "UnknownRegion"),
    ],
)
async def test_names_outside_the_catalog_are_permanent(
    compute: AwsCompute, ec2: EC2Client, change: dict[str, str], code: str
) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        await compute.create_instance(make_spec(**change))

    assert caught.value.code == code
    assert not isinstance(caught.value, ProviderNotFound)
    assert ec2.describe_instances()["Reservations"] == []


async def test_instance_life_cycle(compute: AwsCompute, ec2: EC2Client) -> None:
    spec = make_spec()
    created = await compute.create_instance(spec)
    instance_id = created.provider_id

    found = await compute.find_instance(region=REGION, resource_id=spec.resource_id)
    assert found is not None
    assert found.provider_id == instance_id

    await compute.stop_instance(region=REGION, provider_id=instance_id)
    stopped = await compute.describe_instance(region=REGION, provider_id=instance_id)
    assert stopped.state is InstanceState.stopped

    await compute.resize_instance(region=REGION, provider_id=instance_id, size="large")
    resized = await compute.describe_instance(region=REGION, provider_id=instance_id)
    assert resized.size == "large"
    assert resized.extra["instance_type"] == "t3.large"

    await compute.start_instance(region=REGION, provider_id=instance_id)
    started = await compute.describe_instance(region=REGION, provider_id=instance_id)
    assert started.state in {InstanceState.pending, InstanceState.running}

    await compute.reboot_instance(region=REGION, provider_id=instance_id)
    output = await compute.console_output(region=REGION, provider_id=instance_id)
    assert isinstance(output, str)
    assert output

    await compute.terminate_instance(region=REGION, provider_id=instance_id)
    await compute.terminate_instance(region=REGION, provider_id=instance_id)

    assert await compute.find_instance(region=REGION, resource_id=spec.resource_id) is None
    gone = await compute.describe_instance(region=REGION, provider_id=instance_id)
    assert gone.state is InstanceState.terminated
    name = f"lariba-{spec.resource_id}"
    assert (
        ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"] == []
    )
    assert (
        ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])[
            "SecurityGroups"
        ]
        == []
    )


async def test_resize_of_a_running_instance_is_refused(compute: AwsCompute, ec2: EC2Client) -> None:
    created = await compute.create_instance(make_spec())

    with pytest.raises(PermanentProviderError, match="stop it before") as caught:
        await compute.resize_instance(region=REGION, provider_id=created.provider_id, size="large")

    assert caught.value.code == "IncorrectInstanceState"
    assert raw_instance(ec2, created.provider_id)["InstanceType"] == "t3.micro"


async def test_resize_to_unknown_size_is_permanent(compute: AwsCompute) -> None:
    created = await compute.create_instance(make_spec())
    await compute.stop_instance(region=REGION, provider_id=created.provider_id)

    with pytest.raises(PermanentProviderError) as caught:
        await compute.resize_instance(
            region=REGION, provider_id=created.provider_id, size="gigantic"
        )
    assert caught.value.code == "UnknownSize"


async def test_terminate_of_a_missing_instance_succeeds(compute: AwsCompute) -> None:
    await compute.terminate_instance(region=REGION, provider_id="i-0123456789abcdef0")


@pytest.mark.parametrize("provider_id", ["i-0123456789abcdef0", "not-an-instance-id"])
async def test_describe_of_a_bogus_id_is_not_found(compute: AwsCompute, provider_id: str) -> None:
    with pytest.raises(ProviderNotFound) as caught:
        await compute.describe_instance(region=REGION, provider_id=provider_id)

    assert caught.value.code.startswith("InvalidInstanceID.")


async def test_stop_of_a_bogus_id_is_not_found(compute: AwsCompute) -> None:
    with pytest.raises(ProviderNotFound):
        await compute.stop_instance(region=REGION, provider_id="i-0123456789abcdef0")


async def test_list_instances_returns_only_live_lariba_instances(
    compute: AwsCompute, ec2: EC2Client
) -> None:
    first = await compute.create_instance(make_spec())
    second = await compute.create_instance(make_spec())
    terminated = await compute.create_instance(make_spec())
    await compute.terminate_instance(region=REGION, provider_id=terminated.provider_id)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    foreign = ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1)

    listed = await compute.list_instances(region=REGION)

    assert {i.provider_id for i in listed} == {first.provider_id, second.provider_id}
    assert foreign["Instances"][0]["InstanceId"] not in {i.provider_id for i in listed}
    assert all(i.resource_id is not None for i in listed)


async def test_concurrent_creates_for_one_resource_make_two_instances(
    compute: AwsCompute,
) -> None:
    # EC2's ClientToken would deduplicate at AWS, but moto ignores it and a crash between
    # the call and recording its result loses the token anyway: the reconciler must look
    # the resource up by tag before creating, and report duplicates it finds.
    spec = make_spec()

    created = await asyncio.gather(compute.create_instance(spec), compute.create_instance(spec))

    assert created[0].provider_id != created[1].provider_id
    found = await compute.find_instance(region=REGION, resource_id=spec.resource_id)
    assert found is not None
    assert found.provider_id in {c.provider_id for c in created}
    listed = [
        i for i in await compute.list_instances(region=REGION) if i.resource_id == spec.resource_id
    ]
    assert {i.provider_id for i in listed} == {c.provider_id for c in created}


def client_error(code: str, status: int, message: str = "it failed") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": "request-id",
                "HostId": "",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "RunInstances",
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 503),
        ("TooManyRequestsException", 429),
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
        ("Unavailable", 503),
        ("SomethingNew", 502),
        ("InsufficientInstanceCapacity", 500),
    ],
)
def test_throttling_and_server_errors_are_transient(code: str, status: int) -> None:
    error = classify(client_error(code, status))

    assert isinstance(error, TransientProviderError)
    assert error.retriable
    assert error.code == code


@pytest.mark.parametrize("code", ["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"])
def test_missing_instance_is_not_found(code: str) -> None:
    error = classify(client_error(code, 400))

    assert isinstance(error, ProviderNotFound)
    assert not error.retriable


def test_other_client_errors_are_permanent_with_aws_code_and_message() -> None:
    error = classify(client_error("InvalidParameterValue", 400, "bad instance type"))

    assert type(error) is PermanentProviderError
    assert not error.retriable
    assert error.code == "InvalidParameterValue"
    assert error.message == "bad instance type"


@pytest.mark.parametrize(
    "failure",
    [
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=type,
)
def test_connection_failures_are_transient(failure: BotoCoreError) -> None:
    error = classify(failure)

    assert isinstance(error, TransientProviderError)
    assert error.code == type(failure).__name__


def test_missing_credentials_are_permanent() -> None:
    error = classify(NoCredentialsError())

    assert type(error) is PermanentProviderError
    assert error.code == "NoCredentialsError"


async def test_unreachable_endpoint_is_transient(catalog: Catalog) -> None:
    compute = AwsCompute(
        catalog=catalog,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        session=dummy_session(),
    )

    with pytest.raises(TransientProviderError) as caught:
        await compute.describe_instance(region=REGION, provider_id="i-0123456789abcdef0")
    assert caught.value.code == "EndpointConnectionError"


async def test_terminating_one_duplicate_keeps_the_others_key_pair_and_group(
    compute: AwsCompute, ec2: EC2Client
) -> None:
    spec = make_spec()
    first = await compute.create_instance(spec)
    second = await compute.create_instance(spec)
    name = f"lariba-{spec.resource_id}"

    await compute.terminate_instance(region=REGION, provider_id=first.provider_id)

    assert len(ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]) == 1
    assert ingress_of(ec2, name) == {
        ("tcp", 22, 22, "203.0.113.0/24"),
        ("icmp", -1, -1, "0.0.0.0/0"),
    }
    await compute.terminate_instance(region=REGION, provider_id=second.provider_id)
    assert (
        ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"] == []
    )
