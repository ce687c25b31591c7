"""``CountingCompute`` around the real local provider: it counts every call and raises the
contract's errors where told, without the call reaching the provider."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lariba.providers.base import (
    ComputeProvider,
    InstanceSpec,
    PermanentProviderError,
    TransientProviderError,
)
from lariba.providers.catalog import load_catalog
from lariba.providers.local import LocalCompute
from tests.fixtures.faults import CountingCompute

REGION = "local"


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalCompute]:
    compute = LocalCompute(
        catalog=load_catalog("local"),
        root=tmp_path / "instances",
        enabled=True,
        stop_grace_seconds=1.0,
        sandbox=False,
    )
    yield compute
    for instance in await compute.list_instances(region=REGION):
        await compute.terminate_instance(region=REGION, provider_id=instance.provider_id)


def make_spec() -> InstanceSpec:
    return InstanceSpec(
        resource_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        name="web-1",
        region=REGION,
        size="nano",
        image="shell",
        user_data="exec sleep 1000",
    )


async def test_counts_every_call_by_method(local: LocalCompute) -> None:
    counting = CountingCompute(local)
    compute: ComputeProvider = counting  # mypy checks the wrapper against the Protocol
    spec = make_spec()

    created = await compute.create_instance(spec)
    await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    await compute.terminate_instance(region=REGION, provider_id=created.provider_id)

    assert counting.calls == {
        "create_instance": 1,
        "describe_instance": 2,
        "terminate_instance": 1,
    }
    assert counting.calls["run_instances"] == 0
    assert counting.faults.total() == 0
    times = counting.call_times["describe_instance"]
    assert len(times) == 2
    assert times == sorted(times)
    assert await local.list_instances(region=REGION) == []


async def test_queued_faults_fail_the_next_calls_without_reaching_the_provider(
    local: LocalCompute,
) -> None:
    compute = CountingCompute(local)
    compute.fail_next("create_instance", "transient", times=2, code="RequestLimitExceeded")
    spec = make_spec()

    for _ in range(2):
        with pytest.raises(TransientProviderError) as caught:
            await compute.create_instance(spec)
        assert caught.value.code == "RequestLimitExceeded"
    assert await local.list_instances(region=REGION) == []
    created = await compute.create_instance(spec)

    assert [i.provider_id for i in await local.list_instances(region=REGION)] == [
        created.provider_id
    ]
    assert compute.calls["create_instance"] == 3
    assert compute.faults["create_instance"] == 2


async def test_random_faults_hit_only_the_chosen_methods(local: LocalCompute) -> None:
    compute = CountingCompute(local)
    compute.configure(rate=1.0, kinds=["permanent"], methods={"list_instances"})

    with pytest.raises(PermanentProviderError) as caught:
        await compute.list_instances(region=REGION)
    assert caught.value.code == "InvalidParameterValue"
    assert await compute.find_instance(region=REGION, resource_id=uuid.uuid4()) is None

    assert compute.faults == {"list_instances": 1}
    compute.reset()
    assert await compute.list_instances(region=REGION) == []
    assert compute.calls == {"list_instances": 1}


async def test_a_seeded_rate_fails_a_reproducible_share(local: LocalCompute) -> None:
    compute = CountingCompute(local, seed=5)
    outcomes = []
    for _ in range(2):
        compute.reset()
        compute.configure(rate=0.3, seed=5)
        run = []
        for _ in range(20):
            try:
                await compute.list_instances(region=REGION)
                run.append(False)
            except TransientProviderError:
                run.append(True)
        outcomes.append(run)

    assert outcomes[0] == outcomes[1]
    assert 0 < sum(outcomes[0]) < 20
    assert compute.faults["list_instances"] == sum(outcomes[1])
