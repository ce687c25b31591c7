"""Scale-out, proven: two API replicas and two workers on one PostgreSQL take a mixed
workload through both APIs; one API is stopped (SIGTERM) and one worker killed (SIGKILL)
while it runs. Every request is answered, nothing is done twice, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.jobs import libpq_url
from lariba.core.settings import Settings
from lariba.providers.local import LocalCompute
from tests.delivery.cluster import ApiProcess, Balancer, lariba_apis, wait_ready
from tests.fixtures.cloud import cloud_settings
from tests.fixtures.usage import running_seconds
from tests.fixtures.workers import WorkerProcess, Workers, lariba_workers, local_instances

TENANTS = 4
INSTANCES = 3  # per tenant: one stopped and started, one stopped and deleted, one left
OBJECTS = {"small.txt": 1_000, "medium.bin": 64 * 1024, "large.bin": 256 * 1024}
DELETED_OBJECT = "small.txt"
INSTANCE = {"size": "nano", "image": "shell", "user_data": "exec sleep 600\n"}
PASSWORD = "a-long-unusual-passphrase-42"
OPERATION_SECONDS = 45.0  # the bound within which every operation must have finished
TERMINAL = ("succeeded", "failed")
HEDGE_EVERY = 4  # every 4th POST is sent to both APIs at once


@dataclass
class Tenant:
    """What one tenant asked for and was told, to compare with what exists afterwards."""

    number: int
    email: str
    user_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    project_id: str = ""
    instances: list[str] = field(default_factory=list)
    deleted_instances: list[str] = field(default_factory=list)
    bucket_id: str = ""
    deleted_bucket_id: str = ""
    operations: set[str] = field(default_factory=set)
    objects: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Disruption:
    """When the test stopped an API and killed a worker, and what was in flight then."""

    at: float = 0.0  # time.time(), to compare with processes' start times
    killed_worker_jobs: int = 0
    operations_in_flight: int = 0


def ok(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def accepted(tenant: Tenant, response: httpx.Response) -> dict[str, Any]:
    """A 202's operation, remembered as one the tenant caused."""
    operation = ok(response, 202)
    tenant.operations.add(operation["id"])
    return operation


async def wait_for(
    lb: Balancer, tenant: Tenant, operations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Polls the project's operations (one listing for all) until each has finished."""
    ids = {operation["id"] for operation in operations}
    deadline = time.monotonic() + OPERATION_SECONDS
    while True:
        listed = ok(
            await lb.get(
                f"/v1/projects/{tenant.project_id}/operations",
                params={"limit": 100},
                headers=tenant.headers,
            ),
            200,
        )
        finished = [op for op in listed["items"] if op["id"] in ids and op["status"] in TERMINAL]
        if len(finished) == len(ids):
            failed = [op for op in finished if op["status"] != "succeeded"]
            assert not failed, failed
            return finished
        if time.monotonic() > deadline:
            unfinished = [
                {key: op[key] for key in ("id", "type", "status", "progress", "started_at")}
                | {"resource": op["resource"]["id"]}
                for op in listed["items"]
                if op["id"] in ids and op["status"] not in TERMINAL
            ]
            raise AssertionError(f"unfinished after {OPERATION_SECONDS}s: {unfinished}")
        await asyncio.sleep(0.1)


async def sign_up(lb: Balancer, tenant: Tenant) -> None:
    created = ok(
        await lb.post("/v1/auth/signup", json={"email": tenant.email, "password": PASSWORD}), 201
    )
    tenant.user_id = created["id"]
    tokens = ok(
        await lb.post("/v1/auth/token", data={"username": tenant.email, "password": PASSWORD}),
        200,
    )
    tenant.headers = {"Authorization": f"Bearer {tokens['access_token']}"}


async def open_project(lb: Balancer, tenant: Tenant) -> None:
    """A project with two buckets, one to keep and one to delete later."""
    project = ok(
        await lb.post(
            "/v1/projects", json={"name": f"tenant-{tenant.number}"}, headers=tenant.headers
        ),
        201,
    )
    tenant.project_id = project["id"]
    buckets = f"/v1/projects/{tenant.project_id}/buckets"
    created = [
        await accepted(tenant, await lb.post(buckets, json={"name": name}, headers=tenant.headers))
        for name in (f"data-{tenant.number}", f"scratch-{tenant.number}")
    ]
    tenant.bucket_id, tenant.deleted_bucket_id = (op["resource"]["id"] for op in created)
    await wait_for(lb, tenant, created)


async def upload_objects(lb: Balancer, tenant: Tenant) -> None:
    """Uploads through presigned URLs, downloads each back, lists them."""
    objects = f"/v1/projects/{tenant.project_id}/buckets/{tenant.bucket_id}/objects"
    generator = random.Random(tenant.number)
    for key, size in OBJECTS.items():
        data = generator.randbytes(size)
        signed = ok(
            await lb.post(
                f"{objects}/presign",
                json={"key": key, "method": "PUT", "content_length": size},
                headers=tenant.headers,
            ),
            200,
        )
        ok(await lb.put(signed["url"], content=data, headers=signed["headers"]), 200)
        tenant.objects[key] = data
    for key, data in tenant.objects.items():
        assert await download(lb, tenant, key) == data, key
    listed = ok(await lb.get(objects, headers=tenant.headers), 200)
    assert sorted(item["key"] for item in listed["items"]) == sorted(OBJECTS)


async def create_instances(lb: Balancer, tenant: Tenant) -> list[dict[str, Any]]:
    url = f"/v1/projects/{tenant.project_id}/instances"
    responses = await asyncio.gather(
        *(
            lb.post(url, json={"name": f"vm-{n}", **INSTANCE}, headers=tenant.headers)
            for n in range(INSTANCES)
        )
    )
    operations = [await accepted(tenant, response) for response in responses]
    tenant.instances = [op["resource"]["id"] for op in operations]
    return operations


async def instance_actions(
    lb: Balancer, tenant: Tenant, instance_id: str, actions: list[str]
) -> None:
    url = f"/v1/projects/{tenant.project_id}/instances/{instance_id}"
    for action in actions:
        if action == "delete":
            response = await lb.delete(url, headers=tenant.headers)
        else:
            response = await lb.post(f"{url}/{action}", headers=tenant.headers)
        await wait_for(lb, tenant, [await accepted(tenant, response)])
        ok(await lb.get(url, headers=tenant.headers), 200)


async def object_deletes(lb: Balancer, tenant: Tenant) -> None:
    """Deletes one object and the scratch bucket; the rest is downloaded again."""
    objects = f"/v1/projects/{tenant.project_id}/buckets/{tenant.bucket_id}/objects"
    ok(await lb.delete(objects, params={"key": DELETED_OBJECT}, headers=tenant.headers), 204)
    del tenant.objects[DELETED_OBJECT]
    for key, data in tenant.objects.items():
        assert await download(lb, tenant, key) == data, key
    scratch = f"/v1/projects/{tenant.project_id}/buckets/{tenant.deleted_bucket_id}"
    await wait_for(
        lb, tenant, [await accepted(tenant, await lb.delete(scratch, headers=tenant.headers))]
    )


async def download(lb: Balancer, tenant: Tenant, key: str) -> bytes:
    objects = f"/v1/projects/{tenant.project_id}/buckets/{tenant.bucket_id}/objects"
    signed = ok(
        await lb.post(
            f"{objects}/presign", json={"key": key, "method": "GET"}, headers=tenant.headers
        ),
        200,
    )
    return (await lb.get(signed["url"])).content


@dataclass
class Gate:
    """Opens once ``expected`` tenants have reached it; nobody waits at it but the
    disruption."""

    expected: int
    reached: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def reach(self) -> None:
        self.reached += 1
        if self.reached == self.expected:
            self.opened.set()


async def workload(lb: Balancer, tenant: Tenant, creating: Gate) -> None:
    """One tenant's day: sign up, a project, buckets and objects, then instances (the
    disruption comes as they are being created), power actions, deletes and reads;
    every change waited for to its end."""
    await sign_up(lb, tenant)
    await open_project(lb, tenant)
    await upload_objects(lb, tenant)
    created = await create_instances(lb, tenant)
    creating.reach()
    await wait_for(lb, tenant, created)
    kept, deleted, untouched = tenant.instances
    tenant.deleted_instances = [deleted]
    await asyncio.gather(
        object_deletes(lb, tenant),
        instance_actions(lb, tenant, kept, ["stop", "start"]),
        instance_actions(lb, tenant, deleted, ["stop", "delete"]),
        instance_actions(lb, tenant, untouched, []),
    )
    listed = ok(
        await lb.get(f"/v1/projects/{tenant.project_id}/instances", headers=tenant.headers), 200
    )
    assert sorted(item["id"] for item in listed["items"]) == sorted([kept, untouched])


async def _query(database_url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        return await (await connection.execute(statement, params)).fetchall()


async def disrupt(
    *,
    database_url: str,
    api: ApiProcess,
    workers: dict[int, WorkerProcess],
    creating: Gate,
    disruption: Disruption,
) -> None:
    """As soon as every tenant's instance creates are under way: SIGTERM one API and
    SIGKILL the worker running the most jobs at that moment, so that work is surely cut
    off mid-way."""
    await asyncio.wait_for(creating.opened.wait(), timeout=60)
    deadline = time.monotonic() + 20
    while True:
        doing = Counter(
            row[0]
            for row in await _query(
                database_url,
                "SELECT worker_id FROM procrastinate_jobs WHERE status = 'doing'"
                " AND worker_id IS NOT NULL",
            )
        )
        if doing:
            worker_id, jobs = doing.most_common(1)[0]
            break
        assert time.monotonic() < deadline, "no worker ever ran a job"
        await asyncio.sleep(0.005)
    api.terminate()
    workers[worker_id].kill()
    disruption.at = time.time()
    disruption.killed_worker_jobs = jobs
    [(in_flight,)] = await _query(
        database_url,
        "SELECT count(*) FROM operations WHERE status NOT IN ('succeeded', 'failed')",
    )
    disruption.operations_in_flight = in_flight


async def queue_state(database_url: str) -> list[tuple[Any, ...]]:
    """The jobs not done and the resources not settled, for a failure message."""
    return await _query(
        database_url,
        "SELECT 'job', id, status::text, lock, worker_id::text, scheduled_at::text"
        " FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        " UNION ALL SELECT 'resource', 0, status, id::text, provider_id, desired_state"
        " FROM resources WHERE status NOT IN ('running', 'deleted', 'available')",
    )


async def start_workers(workers: Workers) -> dict[int, WorkerProcess]:
    """Two workers, started one after the other so each registered id maps to its
    process: the test kills the one that holds a job."""
    by_id = {}
    for _ in range(2):
        before = set(workers.worker_ids)
        [process] = await workers.start()
        [worker_id] = workers.worker_ids - before
        by_id[worker_id] = process
    return by_id


@asynccontextmanager
async def balancer(apis: list[ApiProcess]) -> AsyncIterator[Balancer]:
    lb = Balancer([api.url for api in apis], hedge_every=HEDGE_EVERY)
    try:
        yield lb
    finally:
        await lb.close()


def supervisors(root: Path) -> dict[str, list[tuple[int, float]]]:
    """Live supervisor processes of the instances under ``root`` (pid, start time), by
    instance: the provider's processes themselves, not what its records say."""
    found: dict[str, list[tuple[int, float]]] = {}
    for process in psutil.process_iter(["cmdline", "status", "create_time"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] == psutil.STATUS_ZOMBIE or len(cmdline) < 3:
            continue
        if cmdline[-2] == "lariba.providers.local.supervisor" and cmdline[-1].startswith(
            f"{root}/"
        ):
            found.setdefault(Path(cmdline[-1]).name, []).append(
                (process.pid, process.info["create_time"])
            )
    return found


@contextmanager
def no_process_left(root: Path) -> Iterator[None]:
    """At the end, SIGKILLs the process group of any supervisor still running under
    ``root``, one the provider's records lost track of included."""
    try:
        yield
    finally:
        for processes in supervisors(root).values():
            for pid, _ in processes:
                with suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


async def usage_of(lb: Balancer, tenant: Tenant) -> dict[tuple[str, str], Decimal]:
    """{(resource id, meter): metered quantity} of the tenant's project."""
    report = ok(
        await lb.get(
            f"/v1/projects/{tenant.project_id}/usage",
            params={"group_by": "resource", "from": "2000-01-01T00:00:00Z"},
            headers=tenant.headers,
        ),
        200,
    )
    return {
        (item["resource"]["id"], item["meter"]): Decimal(item["metered_quantity"])
        for item in report["items"]
        if item["meter"] != "api_requests"
    }


async def assert_each_post_made_one_thing(
    database_url: str, tenants: list[Tenant], lb: Balancer
) -> None:
    """What exists is exactly what the clients were told was made: no second user,
    project, resource or operation from a POST that was sent again."""
    user_ids = [uuid.UUID(t.user_id) for t in tenants]
    project_ids = [uuid.UUID(t.project_id) for t in tenants]
    users = await _query(
        database_url, "SELECT id FROM users WHERE email LIKE '%%@scale-out.example.com'"
    )
    assert sorted(row[0] for row in users) == sorted(user_ids)
    projects = await _query(
        database_url, "SELECT project_id FROM memberships WHERE user_id = ANY(%s)", user_ids
    )
    assert sorted(row[0] for row in projects) == sorted(project_ids)
    resources = await _query(
        database_url,
        "SELECT id::text, kind, status FROM resources WHERE project_id = ANY(%s)",
        project_ids,
    )
    expected = {}
    for t in tenants:
        for instance in t.instances:
            expected[instance] = (
                "instance",
                "deleted" if instance in t.deleted_instances else "running",
            )
        expected[t.bucket_id] = ("bucket", "available")
        expected[t.deleted_bucket_id] = ("bucket", "deleted")
    assert {row[0]: (row[1], row[2]) for row in resources} == expected
    operations = await _query(
        database_url,
        "SELECT id::text, status FROM operations WHERE project_id = ANY(%s)",
        project_ids,
    )
    assert sorted(row[0] for row in operations) == sorted(
        set().union(*(t.operations for t in tenants))
    )
    assert {row[1] for row in operations} == {"succeeded"}
    posts = [sent.idempotency_key for sent in lb.sent if sent.idempotency_key is not None]
    keys = await _query(
        database_url, "SELECT key FROM idempotency_keys WHERE key LIKE 'scale-out-%%'"
    )
    assert sorted(row[0] for row in keys) == sorted(posts)


async def assert_provider_matches(
    compute: LocalCompute, root: Path, tenants: list[Tenant], disruption: Disruption
) -> None:
    """The provider runs one instance per live instance and none for a deleted one: no
    duplicate, no orphan, each with exactly one supervisor process."""
    live = {i for t in tenants for i in t.instances if i not in t.deleted_instances}
    observed = await compute.list_instances(region="local")
    by_resource = Counter(str(instance.resource_id) for instance in observed)
    assert by_resource == Counter(live), observed
    assert {instance.state.value for instance in observed} == {"running"}, observed
    processes = supervisors(root)
    recorded = {instance.provider_id: instance.extra.get("pid") for instance in observed}
    unexpected = {
        name: found for name, found in processes.items() if name not in recorded or len(found) != 1
    }
    assert unexpected == {}, (unexpected, recorded, disruption)
    assert processes.keys() == recorded.keys(), (processes, recorded)


async def test_two_apis_and_two_workers_lose_nothing_when_one_of_each_goes_down(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    settings: Settings = cloud_settings(
        tmp_path, provider="local", local_compute_enabled=True, worker_in_process=False
    )
    tenants = [Tenant(number=n, email=f"tenant{n}@scale-out.example.com") for n in range(TENANTS)]
    async with local_instances(settings) as compute:
        with (
            no_process_left(settings.data_dir / "instances"),
            lariba_workers(settings, test_database_url) as workers,
            lariba_apis(settings, test_database_url, 2) as apis,
        ):
            workers_by_id, _ = await asyncio.gather(start_workers(workers), wait_ready(apis))
            async with balancer(apis) as lb:
                creating = Gate(expected=TENANTS)
                disruption = Disruption()
                outcomes = await asyncio.gather(
                    disrupt(
                        database_url=test_database_url,
                        api=apis[0],
                        workers=workers_by_id,
                        creating=creating,
                        disruption=disruption,
                    ),
                    *(workload(lb, tenant, creating) for tenant in tenants),
                    return_exceptions=True,
                )
                # Every request a client sent was answered 2xx by one of the APIs.
                failed = [sent for sent in lb.sent if not sent.succeeded]
                assert failed == [], failed
                errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
                assert errors == [], (errors, await queue_state(test_database_url), disruption)

                # The stop came mid-way: a job was running on the killed worker, operations
                # were unfinished, and requests kept coming to the stopped API.
                assert disruption.killed_worker_jobs >= 1, disruption
                assert disruption.operations_in_flight >= 1, disruption
                assert any(sent.errors for sent in lb.sent), "no request needed the other API"
                # Hedged POSTs ran once: the other API replayed the stored response.
                assert any(sent.hedged and sent.replays for sent in lb.sent), lb.sent
                assert await apis[0].exited(within=30) == 0, apis[0].output()

                await assert_each_post_made_one_thing(test_database_url, tenants, lb)
                await assert_provider_matches(
                    compute, settings.data_dir / "instances", tenants, disruption
                )
                for tenant in tenants:
                    # Objects are there byte for byte, and counted once.
                    for key, data in tenant.objects.items():
                        assert await download(lb, tenant, key) == data, key
                    bucket = ok(
                        await lb.get(
                            f"/v1/projects/{tenant.project_id}/buckets/{tenant.bucket_id}",
                            headers=tenant.headers,
                        ),
                        200,
                    )
                    assert bucket["bytes"] == sum(map(len, tenant.objects.values()))
                    # A deleted instance's usage is its time running, once.
                    usage = await usage_of(lb, tenant)
                    for instance in tenant.deleted_instances:
                        [running] = await running_seconds(db, instance)
                        assert usage[(instance, "instance")] == running.quantize(
                            Decimal("0.000001")
                        )
