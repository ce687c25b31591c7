"""Workers SIGKILLed at random moments while a project goes through a seeded, random mix
of operations (instance creates, stops, starts, reboots, resizes and deletes; bucket
creates and deletes), on ``local`` and on ``aws`` (moto server). Afterwards:

- every operation succeeded (a killed worker's job is taken over, never lost or failed);
- every resource is in the state its last change asked for;
- the provider's own inventory (EC2/S3 asked directly; the local instance directories and
  processes, the bucket directories) holds exactly one thing per live resource, the one
  Lariba recorded, and nothing for a deleted one: no duplicate, no orphan;
- once everything is deleted, each instance's metered running time is exactly the time
  its events say it ran: no stretch counted twice by a pass that was killed and re-run.

``LARIBA_RELIABILITY=full`` runs 200 operations per provider; the default (CI) runs 40."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.core.jobs import libpq_url
from lariba.core.settings import Settings
from lariba.providers.local import LocalCompute
from lariba.providers.storage import bucket_name
from tests.fixtures.buckets import buckets_url
from tests.fixtures.cloud import act, cloud_client, cloud_settings, create_instance
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.moto import dummy_session
from tests.fixtures.operations import Step, drive
from tests.fixtures.usage import running_seconds, usage_by_resource
from tests.fixtures.workers import WorkerProcess, Workers, lariba_workers, local_instances

FULL = os.environ.get("LARIBA_RELIABILITY") == "full"
OPERATIONS = 200 if FULL else 40
SEED = int(os.environ.get("LARIBA_CHAOS_SEED", "20261130"))
WORKERS = 4
# Between two kills: short, so that many operations see a kill while they run. Only a
# worker that has started taking jobs is killed (a replacement takes a few seconds to
# start on a busy machine); otherwise no work might ever be done.
KILL_EVERY = (0.1, 0.8)
# A local instance's program takes a second to stop, as a real machine's shutdown does:
# stops, reboots, resizes and deletes are then long enough for kills to land in them.
STOPS_IN_A_SECOND = "trap 'sleep 1; exit 0' TERM\nwhile :; do sleep 0.2; done\n"
READY = "Lariba worker is running."

MIN_KILLS = 3

TAG_RESOURCE_ID = "lariba:resource-id"
TAG_PROJECT_ID = "lariba:project-id"
LIVE_EC2_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]

# {resource id: provider id} of what the provider holds for a project, by its own account.
Inventory = Callable[[str], Awaitable[list[tuple[str, str]]]]


@dataclass
class Target:
    settings: Settings
    image: str
    sizes: tuple[str, str]
    # (resource id, provider id) of each live instance / bucket the provider holds.
    instances: Inventory
    buckets: Callable[[list[str]], Awaitable[set[str]]]
    user_data: str | None = None


def ec2_instances(endpoint: str) -> Inventory:
    ec2 = dummy_session().client("ec2", endpoint_url=endpoint)

    async def inventory(project_id: str) -> list[tuple[str, str]]:
        response = await asyncio.to_thread(
            ec2.describe_instances,
            Filters=[
                {"Name": f"tag:{TAG_PROJECT_ID}", "Values": [project_id]},
                {"Name": "instance-state-name", "Values": LIVE_EC2_STATES},
            ],
        )
        found = []
        for reservation in response["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                found.append((tags.get(TAG_RESOURCE_ID, "untagged"), instance["InstanceId"]))
        return found

    return inventory


def s3_buckets(endpoint: str) -> Callable[[list[str]], Awaitable[set[str]]]:
    s3 = dummy_session().client("s3", endpoint_url=endpoint)

    async def inventory(resource_ids: list[str]) -> set[str]:
        names = {b["Name"] for b in (await asyncio.to_thread(s3.list_buckets))["Buckets"]}
        return {r for r in resource_ids if bucket_name(uuid.UUID(r)) in names}

    return inventory


def local_instances_of(compute: LocalCompute) -> Inventory:
    async def inventory(project_id: str) -> list[tuple[str, str]]:
        # The local provider keeps one directory per instance; every one of them counts,
        # whatever project: the test's data directory is its own.
        return [
            (str(instance.resource_id), instance.provider_id)
            for instance in await compute.list_instances(region="local")
            if instance.state.value != "terminated"
        ]

    return inventory


def local_buckets(root: Path) -> Callable[[list[str]], Awaitable[set[str]]]:
    async def inventory(resource_ids: list[str]) -> set[str]:
        return {r for r in resource_ids if (root / bucket_name(uuid.UUID(r))).is_dir()}

    return inventory


@pytest.fixture(params=["local", "aws"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    quotas = {"quota_instances": 500, "quota_vcpus": 1000, "quota_buckets": 500}
    if request.param == "aws":
        endpoint: str = request.getfixturevalue("moto_endpoint")
        yield Target(
            settings=cloud_settings(tmp_path, provider="aws", aws_endpoint_url=endpoint, **quotas),
            image="amazon-linux-2023",
            sizes=("nano", "micro"),
            instances=ec2_instances(endpoint),
            buckets=s3_buckets(endpoint),
        )
        return
    settings = cloud_settings(tmp_path, provider="local", local_compute_enabled=True, **quotas)
    async with local_instances(settings) as compute:
        yield Target(
            settings=settings,
            image="shell",
            sizes=("nano", "small"),
            instances=local_instances_of(compute),
            buckets=local_buckets(settings.data_dir / "buckets"),
            user_data=STOPS_IN_A_SECOND,
        )


@dataclass
class Plan:
    """What the test asks of one resource, in order, and where that leaves it."""

    kind: str  # "instance" | "bucket"
    name: str
    changes: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    final: str = ""

    @property
    def operations(self) -> int:
        return 1 + len(self.changes)


def plan_instance(rng: random.Random, name: str, sizes: tuple[str, str]) -> Plan:
    plan = Plan("instance", name)
    state, size = "running", sizes[0]
    for _ in range(rng.randint(0, 5)):
        choices = ["stop", "reboot", "resize"] if state == "running" else ["start", "resize"]
        action = rng.choice(choices)
        if action == "resize":
            size = sizes[1] if size == sizes[0] else sizes[0]
            plan.changes.append(("resize", {"size": size}))
            continue
        plan.changes.append((action, None))
        state = {"stop": "stopped", "start": "running"}.get(action, state)
    if rng.random() < 0.3:
        plan.changes.append(("delete", None))
        state = "deleted"
    plan.final = state
    return plan


def plan_bucket(rng: random.Random, name: str) -> Plan:
    plan = Plan("bucket", name, final="available")
    if rng.random() < 0.5:
        plan.changes.append(("delete", None))
        plan.final = "deleted"
    return plan


def make_plans(rng: random.Random, sizes: tuple[str, str]) -> list[Plan]:
    plans: list[Plan] = []
    while sum(p.operations for p in plans) < OPERATIONS:
        n = len(plans)
        if rng.random() < 0.8:
            plans.append(plan_instance(rng, f"chaos-vm-{n}", sizes))
        else:
            plans.append(plan_bucket(rng, f"chaos-bucket-{n}"))
    return plans


async def _reconciling(database_url: str) -> bool:
    """Whether some worker is in the middle of a resource's reconcile pass."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        row = await (
            await connection.execute(
                "SELECT count(*) FROM procrastinate_jobs"
                " WHERE status = 'doing' AND task_name = 'reconcile_resource'"
            )
        ).fetchone()
    return bool(row and row[0])


def _ready(worker: WorkerProcess) -> bool:
    return worker.log.exists() and READY in worker.log.read_text(errors="replace")


@asynccontextmanager
async def killing(workers: Workers, rng: random.Random) -> AsyncIterator[list[int]]:
    """SIGKILLs a random worker every second or so while resources are being worked on,
    and spawns a replacement at once, until the block ends. Yields the pids killed."""
    killed: list[int] = []

    async def loop() -> None:
        while True:
            await asyncio.sleep(rng.uniform(*KILL_EVERY))
            working = [w for w in workers.started if w.process.poll() is None and _ready(w)]
            # One worker is always left working (its replacements start slowly on a busy
            # machine: killing each as it comes up would stop all progress).
            if len(working) < 2 or not await _reconciling(workers.database_url):
                continue  # or a kill now would hit no operation
            victim = rng.choice(working)
            victim.kill()
            killed.append(victim.pid)
            workers.spawn()

    task = asyncio.create_task(loop())
    try:
        yield killed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def begin(
    client: httpx.AsyncClient, user: TestUser, pid: str, target: Target, plan: Plan
) -> dict[str, Any]:
    """The resource's create: its operation."""
    if plan.kind == "instance":
        extra = {"user_data": target.user_data} if target.user_data else {}
        return await create_instance(
            client, user, pid, name=plan.name, size=target.sizes[0], image=target.image, **extra
        )
    response = await client.post(buckets_url(pid), json={"name": plan.name}, headers=user.headers)
    assert response.status_code == 202, response.text
    operation: dict[str, Any] = response.json()
    return operation


async def delete_bucket(
    client: httpx.AsyncClient, user: TestUser, pid: str, bucket_id: str
) -> dict[str, Any]:
    response = await client.delete(
        f"{buckets_url(pid)}/{bucket_id}", params={"force": "true"}, headers=user.headers
    )
    assert response.status_code == 202, response.text
    operation: dict[str, Any] = response.json()
    return operation


def steps(
    client: httpx.AsyncClient, user: TestUser, pid: str, resource_id: str, plan: Plan
) -> list[Step]:
    if plan.kind == "bucket":
        return [partial(delete_bucket, client, user, pid, resource_id) for _ in plan.changes]
    return [partial(act, client, user, pid, resource_id, a, body) for a, body in plan.changes]


@dataclass(frozen=True)
class Recorded:
    """What Lariba's database says of a resource."""

    kind: str
    status: str
    provider_id: str | None


async def lariba_resources(db: AsyncSession, pid: str) -> dict[str, Recorded]:
    await db.rollback()
    rows = await db.execute(
        select(Resource.id, Resource.kind, Resource.status, Resource.provider_id).where(
            Resource.project_id == uuid.UUID(pid)
        )
    )
    return {str(row[0]): Recorded(row[1], row[2], row[3]) for row in rows}


async def test_workers_killed_at_random_lose_duplicate_and_orphan_nothing(
    target: Target, test_database_url: str, db: AsyncSession
) -> None:
    rng = random.Random(SEED)
    plans = make_plans(rng, target.sizes)
    async with cloud_client(target.settings, test_database_url, run_worker=False) as client:
        with lariba_workers(target.settings, test_database_url) as workers:
            await workers.start(WORKERS)
            user = await sign_up(client)
            pid = (await create_project(client, user))["id"]

            async with killing(workers, rng) as killed:
                created = [await begin(client, user, pid, target, plan) for plan in plans]
                ids = [op["resource"]["id"] for op in created]
                chains = {
                    rid: steps(client, user, pid, rid, plan)
                    for rid, plan in zip(ids, plans, strict=True)
                }
                finished = await drive(
                    client, user, created, then=chains, within=300 if FULL else 150,
                    poll_seconds=0.3,
                )  # fmt: skip
            assert len(killed) >= MIN_KILLS, f"only {len(killed)} kills: the run proves little"
            failed = [op for op in finished if op["status"] != "succeeded"]
            assert not failed, (failed, workers.logs())
            assert len(finished) == sum(p.operations for p in plans) >= OPERATIONS

            # Every resource where its last change left it, and the provider agrees.
            resources = await lariba_resources(db, pid)
            assert sorted(resources) == sorted(ids)
            assert {rid: resources[rid].status for rid in ids} == {
                rid: plan.final for rid, plan in zip(ids, plans, strict=True)
            }, workers.logs()
            await assert_inventory_matches(target, pid, resources)

            # Then everything goes: nothing left at the provider, usage counted once.
            deletes = [
                await (delete_bucket if r.kind == "bucket" else _delete_instance)(
                    client, user, pid, rid
                )
                for rid, r in resources.items()
                if r.status != "deleted"
            ]
            if deletes:
                done = await drive(client, user, deletes, then={}, within=120)
                assert {op["status"] for op in done} == {"succeeded"}, workers.logs()
            resources = await lariba_resources(db, pid)
            assert {r.status for r in resources.values()} == {"deleted"}
            await assert_inventory_matches(target, pid, resources)
            await assert_usage_counted_once(client, user, db, pid, resources)
    print(  # the figures the reliability docs quote
        f"chaos {target.settings.provider.value}: {len(finished)} operations on "
        f"{len(plans)} resources, {len(killed)} workers killed"
    )


async def _delete_instance(
    client: httpx.AsyncClient, user: TestUser, pid: str, instance_id: str
) -> dict[str, Any]:
    return await act(client, user, pid, instance_id, "delete")


async def assert_inventory_matches(
    target: Target, pid: str, resources: dict[str, Recorded]
) -> None:
    instances = await target.instances(pid)
    duplicates = [rid for rid, n in Counter(rid for rid, _ in instances).items() if n > 1]
    assert not duplicates, ("more than one provider instance for", duplicates, instances)
    assert dict(instances) == {
        rid: r.provider_id
        for rid, r in resources.items()
        if r.kind == "instance" and r.status != "deleted"
    }
    buckets = [rid for rid, r in resources.items() if r.kind == "bucket"]
    assert await target.buckets(buckets) == {
        rid for rid in buckets if resources[rid].status != "deleted"
    }


async def assert_usage_counted_once(
    client: httpx.AsyncClient,
    user: TestUser,
    db: AsyncSession,
    pid: str,
    resources: dict[str, Recorded],
) -> None:
    metered: defaultdict[str, Decimal] = defaultdict(Decimal)
    items = 0
    for (rid, meter, _sku), quantity in (await usage_by_resource(client, user, pid)).items():
        if meter == "instance":
            metered[rid] += quantity
            items += 1
    ran = {
        rid: sum(await running_seconds(db, rid), Decimal(0))
        for rid, r in resources.items()
        if r.kind == "instance"
    }
    # Each report line is rounded to the microsecond: a resize splits a resource's time
    # over two lines, each off by at most half a microsecond.
    tolerance = Decimal("0.000001") * max(items, 1)
    off = {
        rid: (metered[rid], seconds)
        for rid, seconds in ran.items()
        if abs(metered[rid] - seconds) > tolerance
    }
    assert not off, ("metered vs ran, seconds", off)
