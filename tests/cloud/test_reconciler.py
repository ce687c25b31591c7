"""The reconciler's handling of provider failures and drift, on the local provider with
faults injected through the provider contract."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource, ResourceEvent
from lariba.cloud.engine.reconciler import resync
from lariba.cloud.tasks import KINDS
from lariba.core.retry import backoff
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
from lariba.providers.local import LocalCompute
from tests.fixtures.cloud import (
    cloud_app,
    cloud_settings,
    create_instance,
    delete_all_instances,
    get_instance,
    wait_for_operation,
)
from tests.fixtures.faults import CountingCompute
from tests.fixtures.identity import create_project, sign_up

SCRIPT = "exec sleep 600\n"


def counting_local(tmp_path: Path) -> CountingCompute:
    return CountingCompute(
        LocalCompute(catalog=load_catalog("local"), root=tmp_path / "instances", enabled=True)
    )


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    for retry in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
        for _ in range(50):
            delay = backoff(retry, base=0.5, cap=8.0)
            assert ceiling / 2 <= delay <= ceiling


async def test_transient_errors_are_retried_with_backoff_and_converge(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    compute = counting_local(tmp_path)
    compute.fail_next("create_instance", "transient", times=3, code="Throttling")
    settings = cloud_settings(tmp_path)
    async with cloud_app(settings, test_database_url, provider=Provider("local", compute)) as (
        _app,
        client,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(client, user, pid, size="nano", user_data=SCRIPT)
        done = await wait_for_operation(client, user, created)
        assert done["status"] == "succeeded", done
        instance = await get_instance(client, user, pid, created["resource"]["id"])
        assert instance["status"] == "running"
        await delete_all_instances(client, user, pid)
    # Three refused, one accepted; spaced by at least half of each backoff ceiling.
    times = compute.call_times["create_instance"]
    assert compute.calls["create_instance"] == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    base = settings.reconcile_retry_base_seconds
    for retry, gap in enumerate(gaps, start=1):
        assert gap >= min(settings.reconcile_retry_max_seconds, base * 2 ** (retry - 1)) / 2 * 0.9
    # Exactly one instance: retries of a refused create never duplicate.
    resource = await db.scalar(select(Resource))
    assert resource is not None and resource.create_attempts == 4
    assert len(await compute.inner.list_instances(region="local")) == 0


async def test_a_refusal_ends_in_error_with_the_reason_and_no_more_calls(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    compute = counting_local(tmp_path)
    compute.fail_next(
        "create_instance", "permanent", code="InvalidParameterValue", message="no such subnet"
    )
    settings = cloud_settings(tmp_path)
    async with cloud_app(settings, test_database_url, provider=Provider("local", compute)) as (
        _app,
        client,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(client, user, pid, size="nano", user_data=SCRIPT)
        done = await wait_for_operation(client, user, created)
        assert done["status"] == "failed"
        assert done["error"] == {"code": "InvalidParameterValue", "message": "no such subnet"}
        instance = await get_instance(client, user, pid, created["resource"]["id"])
        assert instance["status"] == "error"
        assert "no such subnet" in instance["status_reason"]
        assert "InvalidParameterValue" in instance["status_reason"]
        calls = sum(compute.calls.values())
        await asyncio.sleep(1.5)
        assert sum(compute.calls.values()) == calls, "no retry after a refusal"
    events = (await db.execute(select(ResourceEvent.to_status, ResourceEvent.reason))).all()
    assert events[-1][0] == "error"


async def test_endless_throttling_gives_up_after_the_retry_limit(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    compute = counting_local(tmp_path)
    compute.configure(rate=1.0, kinds=["transient"], methods=["create_instance"])
    settings = cloud_settings(tmp_path, reconcile_max_retries=3, reconcile_retry_max_seconds=0.4)
    async with cloud_app(settings, test_database_url, provider=Provider("local", compute)) as (
        _app,
        client,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(client, user, pid, size="nano", user_data=SCRIPT)
        done = await wait_for_operation(client, user, created)
        assert done["status"] == "failed"
        assert "gave up after 3 retries" in done["error"]["message"]
    assert compute.calls["create_instance"] == 4


async def test_resync_records_drift_and_takes_the_providers_word(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    compute = counting_local(tmp_path)
    settings = cloud_settings(tmp_path)
    async with cloud_app(settings, test_database_url, provider=Provider("local", compute)) as (
        app,
        client,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        stopped_outside = await create_instance(
            client, user, pid, name="a", size="nano", user_data=SCRIPT
        )
        deleted_outside = await create_instance(
            client, user, pid, name="b", size="nano", user_data=SCRIPT
        )
        for created in (stopped_outside, deleted_outside):
            assert (await wait_for_operation(client, user, created))["status"] == "succeeded"
        a = await get_instance(client, user, pid, stopped_outside["resource"]["id"])
        b = await get_instance(client, user, pid, deleted_outside["resource"]["id"])
        await compute.inner.stop_instance(region="local", provider_id=a["provider_id"])
        await compute.inner.terminate_instance(region="local", provider_id=b["provider_id"])

        assert await resync(app.state.cloud, KINDS, app.state.jobs.app) == 2
        for _ in range(100):
            a = await get_instance(client, user, pid, a["id"])
            b = await get_instance(client, user, pid, b["id"])
            if a["status"] == "stopped" and b["status"] == "error":
                break
            await asyncio.sleep(0.1)
        assert (a["status"], a["desired_state"]) == ("stopped", "stopped")
        assert b["status"] == "error"
        assert "outside Lariba" in b["status_reason"]
        # Nothing drifted any more: the next resync finds nothing to do.
        assert await resync(app.state.cloud, KINDS, app.state.jobs.app) == 0
        events = await client.get(
            f"/v1/projects/{pid}/instances/{a['id']}/events", headers=user.headers
        )
        latest = events.json()["items"][0]
        assert (latest["type"], latest["from_status"], latest["to_status"]) == (
            "drift",
            "running",
            "stopped",
        )
        await delete_all_instances(client, user, pid)
    drift = await db.scalar(
        select(ResourceEvent).where(
            ResourceEvent.resource_id == uuid.UUID(a["id"]), ResourceEvent.type == "drift"
        )
    )
    assert drift is not None and drift.reason == "stopped outside Lariba"
