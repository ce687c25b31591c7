"""The real ``AwsCompute`` through ``FaultProxy`` to moto: which injected faults botocore
retries, how the rest surface as the contract's errors, and that the proxy counts right."""

from __future__ import annotations

import contextlib
import time
import uuid

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from mypy_boto3_ec2.client import EC2Client

from lariba.providers.aws import AwsCompute
from lariba.providers.base import (
    InstanceSpec,
    InstanceState,
    PermanentProviderError,
    ProviderNotFound,
    TransientProviderError,
)
from tests.fixtures.faults import FaultKind, FaultProxy, aws_compute_behind
from tests.fixtures.moto import REGION, dummy_session

MISSING = "i-0123456789abcdef0"


def make_spec() -> InstanceSpec:
    return InstanceSpec(
        resource_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        name="web-1",
        region=REGION,
        size="micro",
        image="amazon-linux-2023",
    )


def live_instances(ec2: EC2Client) -> list[str]:
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("throttle", 503, "RequestLimitExceeded"),
        ("server_error", 500, "InternalError"),
        ("permanent", 400, "InvalidParameterValue"),
    ],
)
def test_botocore_parses_injected_errors_as_ec2_errors(
    fault_proxy: FaultProxy, kind: FaultKind, status: int, code: str
) -> None:
    client = dummy_session().client(
        "ec2",
        endpoint_url=fault_proxy.url,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    fault_proxy.fail_next("DescribeVpcs", kind)

    with pytest.raises(ClientError) as caught:
        client.describe_vpcs()

    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert caught.value.response["ResponseMetadata"]["RequestId"]


async def test_without_faults_the_proxy_is_transparent(
    fault_proxy: FaultProxy, ec2: EC2Client
) -> None:
    compute = aws_compute_behind(fault_proxy)
    spec = make_spec()

    created = await compute.create_instance(spec)
    described = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    await compute.terminate_instance(region=REGION, provider_id=created.provider_id)

    assert described.resource_id == spec.resource_id
    assert live_instances(ec2) == []
    gone = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    assert gone.state is InstanceState.terminated
    assert fault_proxy.calls("RunInstances") == 1
    assert fault_proxy.calls("TerminateInstances") == 1
    assert fault_proxy.faults() == 0
    assert fault_proxy.attempts() == fault_proxy.calls() > 5


@pytest.mark.parametrize("kind", ["throttle", "server_error"])
async def test_retriable_faults_are_retried_by_botocore_until_one_succeeds(
    fault_proxy: FaultProxy, ec2: EC2Client, kind: FaultKind
) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=3)
    fault_proxy.fail_next("RunInstances", kind, times=2)

    created = await compute.create_instance(make_spec())

    assert live_instances(ec2) == [created.provider_id]
    assert fault_proxy.faults("RunInstances") == 2
    assert fault_proxy.calls("RunInstances") == 1
    assert fault_proxy.attempts("RunInstances") == 3
    times = fault_proxy.attempt_times("RunInstances")
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("kind", "code"), [("throttle", "RequestLimitExceeded"), ("server_error", "InternalError")]
)
async def test_retriable_fault_on_every_attempt_is_transient(
    fault_proxy: FaultProxy, ec2: EC2Client, kind: FaultKind, code: str
) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=2)
    fault_proxy.fail_next("RunInstances", kind, times=5)

    with pytest.raises(TransientProviderError) as caught:
        await compute.create_instance(make_spec())

    assert caught.value.code == code
    # max_attempts counts the first attempt: 2 means one retry, not two.
    assert fault_proxy.attempts("RunInstances") == 2
    assert fault_proxy.calls("RunInstances") == 0
    assert live_instances(ec2) == []


async def test_random_faults_on_a_share_of_calls_converge(
    fault_proxy: FaultProxy, ec2: EC2Client
) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=5)
    fault_proxy.configure(rate=0.3, kinds=["server_error", "throttle"], seed=3)

    created = await compute.create_instance(make_spec())
    await compute.stop_instance(region=REGION, provider_id=created.provider_id)
    await compute.start_instance(region=REGION, provider_id=created.provider_id)
    observed = await compute.describe_instance(region=REGION, provider_id=created.provider_id)

    assert observed.provider_id == created.provider_id
    assert live_instances(ec2) == [created.provider_id]
    assert fault_proxy.faults() >= 2
    assert fault_proxy.attempts() == fault_proxy.calls() + fault_proxy.faults()


async def quick_compute(proxy: FaultProxy) -> AwsCompute:
    """Read timeout 1 s, two attempts; its client built and moto's EC2 backend warmed by a
    first call, so neither counts against the timing of the next."""
    compute = aws_compute_behind(proxy, read_timeout_seconds=1.0, max_attempts=2)
    await compute.list_instances(region=REGION)
    proxy.reset()
    return compute


async def test_read_timeout_is_transient_within_the_configured_time(
    fault_proxy: FaultProxy,
) -> None:
    compute = await quick_compute(fault_proxy)
    fault_proxy.fail_next("DescribeInstances", "timeout", times=2)

    started = time.monotonic()
    with pytest.raises(TransientProviderError) as caught:
        await compute.describe_instance(region=REGION, provider_id=MISSING)
    elapsed = time.monotonic() - started

    assert caught.value.code == "ReadTimeoutError"
    assert 2.0 <= elapsed < 4.0  # two attempts of 1 s, a short backoff between them
    assert fault_proxy.attempts("DescribeInstances") == 2
    assert fault_proxy.calls("DescribeInstances") == 0


async def test_one_timeout_is_retried(fault_proxy: FaultProxy) -> None:
    compute = await quick_compute(fault_proxy)
    fault_proxy.fail_next("DescribeInstances", "timeout")

    with pytest.raises(ProviderNotFound):
        await compute.describe_instance(region=REGION, provider_id=MISSING)

    assert fault_proxy.faults("DescribeInstances") == 1
    assert fault_proxy.calls("DescribeInstances") == 1


async def test_lost_response_is_transient_although_the_instance_was_created(
    fault_proxy: FaultProxy, ec2: EC2Client
) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=1)
    fault_proxy.hold_seconds = 0.2
    spec = make_spec()
    fault_proxy.fail_next("RunInstances", "lost_response")

    with pytest.raises(TransientProviderError) as caught:
        await compute.create_instance(spec)

    assert caught.value.code == "ConnectionClosedError"
    found = await compute.find_instance(region=REGION, resource_id=spec.resource_id)
    assert found is not None
    assert live_instances(ec2) == [found.provider_id]
    assert fault_proxy.calls("RunInstances") == 1
    assert fault_proxy.faults("RunInstances") == 1


async def test_permanent_fault_is_not_retried_and_keeps_code_and_message(
    fault_proxy: FaultProxy, ec2: EC2Client
) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=3)
    fault_proxy.fail_next(
        "RunInstances",
        "permanent",
        code="InvalidParameterValue",
        message="Value (t9.nano) for parameter instanceType is invalid.",
    )

    with pytest.raises(PermanentProviderError) as caught:
        await compute.create_instance(make_spec())

    assert type(caught.value) is PermanentProviderError
    assert caught.value.code == "InvalidParameterValue"
    assert caught.value.message == "Value (t9.nano) for parameter instanceType is invalid."
    assert fault_proxy.attempts("RunInstances") == 1
    assert fault_proxy.calls("RunInstances") == 0
    assert live_instances(ec2) == []


async def test_only_actions_limits_random_faults(fault_proxy: FaultProxy) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=3)
    fault_proxy.configure(rate=1.0, kinds=["permanent"], only_actions={"RunInstances"})

    with pytest.raises(PermanentProviderError):
        await compute.create_instance(make_spec())
    assert await compute.list_instances(region=REGION) == []

    assert fault_proxy.faults() == fault_proxy.faults("RunInstances") == 1
    assert fault_proxy.calls("RunInstances") == 0
    assert fault_proxy.calls("DescribeImages") == 1
    assert fault_proxy.calls("DescribeInstances") == 1


async def test_same_seed_injects_the_same_faults(fault_proxy: FaultProxy) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=1)

    def outcomes() -> list[int]:
        return [fault_proxy.faults(), fault_proxy.calls()]

    runs = []
    for _ in range(2):
        fault_proxy.reset()
        fault_proxy.configure(rate=0.5, kinds=["server_error"], seed=11)
        for _ in range(6):
            with contextlib.suppress(TransientProviderError, ProviderNotFound):
                await compute.describe_instance(region=REGION, provider_id=MISSING)
        runs.append(outcomes())

    assert runs[0] == runs[1]
    assert runs[0][0] > 0
    assert runs[0][1] > 0


async def test_reset_makes_the_proxy_transparent_again(fault_proxy: FaultProxy) -> None:
    compute = aws_compute_behind(fault_proxy, max_attempts=1)
    fault_proxy.configure(rate=1.0, kinds=["permanent"])
    fault_proxy.fail_next("DescribeInstances", "throttle", times=3)

    fault_proxy.reset()

    assert fault_proxy.attempts() == 0
    assert await compute.list_instances(region=REGION) == []
    assert fault_proxy.faults() == 0
    assert fault_proxy.calls("DescribeInstances") == 1


def test_invalid_configuration_is_refused(fault_proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="rate"):
        fault_proxy.configure(rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        fault_proxy.configure(rate=0.5, kinds=[])
    with pytest.raises(ValueError, match="unknown fault kind"):
        fault_proxy.fail_next("RunInstances", "gremlins")  # type: ignore[arg-type]
