"""The phases of the instance-create benchmark: N instances created on a moto server by
a plain boto3 loop, or through the Lariba API with its workers, each measured the same
way (wall time, CPU per process, moto requests) and checked at moto afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import httpx
import psycopg
from botocore.config import Config

from bench.cli import busy_cpu_seconds, progress, stolen_cpu_seconds
from bench.servers import (
    MotoServer,
    PostgresServer,
    ServerProcess,
    SetupError,
    UvicornServer,
    new_database,
    prepare_database,
    start_worker,
)
from lariba.cloud.engine.operations import RECONCILE_TASK
from lariba.core.jobs import libpq_url
from lariba.core.settings import Settings
from lariba.providers.base import TAG_PROJECT_ID, TAG_RESOURCE_ID
from lariba.providers.catalog import Catalog

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.literals import InstanceTypeType
    from mypy_boto3_ec2.type_defs import RunInstancesRequestTypeDef, TagTypeDef

REGION = "us-east-1"
SIZE = "micro"
IMAGE = "amazon-linux-2023"
# How often the client asks the API whether an instance is still on its way: the
# resolution of the Lariba times, at the cost of one small request per interval.
STATUS_POLL_SECONDS = 0.2
_NOT_RUNNING = ("pending", "provisioning", "stopping", "stopped", "deleting", "error")
_ON_THE_WAY = ("pending", "provisioning")
_LIVE_STATES = ["pending", "running", "stopping", "stopped"]
_PASSWORD = "bench-" + secrets.token_urlsafe(18)


class BenchError(Exception):
    """The run went wrong: a failed create, a duplicate instance, a timeout."""


@dataclass(frozen=True)
class Load:
    """What every phase creates, and how the Lariba phases are driven."""

    count: int
    post_connections: int
    worker_concurrency: int
    # LARIBA_RECONCILE_POLL_SECONDS; None keeps Lariba's default.
    reconcile_poll_seconds: float | None

    @property
    def timeout_seconds(self) -> float:
        """How long a phase may take before the run gives up on it."""
        return 120.0 + self.count


@dataclass(frozen=True)
class JobProfile:
    """The reconcile jobs of a Lariba phase, from procrastinate's event log."""

    # Run time of each instance's first job (it creates the instance) and of the others.
    first_ms: list[float]
    later_ms: list[float]
    # From due (deferred, or its scheduled time) to started: the queue and the fetch delay.
    due_to_started_s: list[float]
    # Share of the workers' job slots busy over the timed window.
    slots_busy: float


@dataclass
class Phase:
    """One way of creating the N instances, and what it cost."""

    name: str
    seconds: float
    moto_requests: int
    # CPU seconds per process group over the timed window, and the whole machine's.
    cpu: dict[str, float]
    workers: int | None = None
    # Lariba only: when the last POST was answered, the POSTs' latencies, per instance
    # (from its create operation) the seconds from accepted to picked up by a worker and
    # to succeeded, and the workers' jobs.
    posted_seconds: float | None = None
    post_ms: list[float] = field(default_factory=list)
    picked_up_s: list[float] = field(default_factory=list)
    succeeded_s: list[float] = field(default_factory=list)
    jobs: JobProfile | None = None

    def other_work_cores(self) -> float:
        """Cores' worth of CPU that processes other than the benchmark's used meanwhile
        (a configured PostgreSQL on this machine counts as other work)."""
        ours = sum(v for name, v in self.cpu.items() if name not in _MACHINE and not math.isnan(v))
        return max(0.0, self.cpu["machine"] - ours) / self.seconds

    def stolen_cores(self) -> float:
        """Cores' worth of CPU the hypervisor gave other guests meanwhile (NaN: unknown)."""
        return self.cpu.get("stolen", float("nan")) / self.seconds

    def as_json(self, count: int, *, baseline_seconds: float | None) -> dict[str, Any]:
        """The phase's figures; with ``baseline_seconds``, also its ratio to them."""
        row: dict[str, Any] = {
            "target": self.name,
            "workers": self.workers,
            "seconds": round(self.seconds, 3),
            "instances_per_second": round(count / self.seconds, 2),
            "moto_requests_per_instance": round(self.moto_requests / count, 2),
            "cpu_ms_per_instance": {
                name: _rounded(value * 1000 / count, 1)
                for name, value in self.cpu.items()
                if name not in _MACHINE
            },
            "other_work_cores": _rounded(self.other_work_cores(), 2),
            "stolen_cores": _rounded(self.stolen_cores(), 2),
        }
        if baseline_seconds is not None:
            row["ratio"] = round(baseline_seconds / self.seconds, 3)
        if self.posted_seconds is not None:
            row |= {
                "all_posts_answered_s": round(self.posted_seconds, 3),
                "post_ms": summary(self.post_ms, (0.5, 0.99)),
                "accepted_to_picked_up_s": summary(self.picked_up_s, (0.5, 1.0)),
                "accepted_to_succeeded_s": summary(self.succeeded_s, (0.5, 0.95, 1.0)),
            }
        if self.jobs is not None:
            row["jobs"] = {
                "per_instance": round(
                    (len(self.jobs.first_ms) + len(self.jobs.later_ms)) / count, 2
                ),
                "first_ms": summary(self.jobs.first_ms, (0.5,)),
                "later_ms": summary(self.jobs.later_ms, (0.5,)),
                "due_to_started_s": summary(self.jobs.due_to_started_s, (0.5, 1.0)),
                "slots_busy": round(self.jobs.slots_busy, 3),
            }
        return row


# Meter entries about the whole machine rather than a process group of the benchmark.
_MACHINE = ("machine", "stolen")


def _rounded(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, round(fraction * len(ordered)))) - 1]


def summary(values: list[float], fractions: tuple[float, ...]) -> dict[str, float | None]:
    names = {0.5: "p50", 0.95: "p95", 0.99: "p99", 1.0: "max"}
    return {names[f]: _rounded(_percentile(values, f), 3) for f in fractions}


class Meter:
    """CPU seconds per named process group, the whole machine's, and the AWS requests
    moto served, between ``start`` and ``stop``."""

    def __init__(self, moto: MotoServer, processes: dict[str, Callable[[], float]]) -> None:
        self._moto = moto
        self._sources = processes | {
            "moto": moto.cpu_seconds,
            "machine": busy_cpu_seconds,
            "stolen": stolen_cpu_seconds,
        }
        self._cpu: dict[str, float] = {}
        self._requests = 0

    def start(self) -> None:
        self._cpu = {name: read() for name, read in self._sources.items()}
        self._requests = self._moto.api_requests()

    def stop(self) -> tuple[dict[str, float], int]:
        cpu = {name: read() - self._cpu[name] for name, read in self._sources.items()}
        return cpu, self._moto.api_requests() - self._requests


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ec2_client(endpoint_url: str) -> EC2Client:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    # As Lariba's clients: standard retries, three attempts in all.
    config = Config(retries={"mode": "standard", "total_max_attempts": 3})
    return session.client("ec2", endpoint_url=endpoint_url, config=config)


def fresh_moto(moto: MotoServer, ec2: EC2Client) -> None:
    """Resets moto, then has it build its EC2 backend (the default VPC, the AMI list),
    which it does on the first call after a reset: moto's start-up, not work either
    side of the comparison does."""
    moto.reset()
    ec2.describe_vpcs()


def _check_moto_holds(ec2: EC2Client, resource_ids: set[str], phase: str) -> None:
    """moto holds exactly one live instance per created resource: none missing, none
    twice, none else."""
    tags: list[str] = []
    paginator = ec2.get_paginator("describe_instances")
    for page in paginator.paginate(
        Filters=[{"Name": "instance-state-name", "Values": _LIVE_STATES}]
    ):
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                found = {t.get("Key"): t.get("Value") for t in instance.get("Tags", [])}
                tags.append(found.get(TAG_RESOURCE_ID) or "")
    if len(tags) != len(set(tags)):
        raise BenchError(f"{phase}: moto holds {len(tags) - len(set(tags))} duplicate instances")
    if set(tags) != resource_ids:
        raise BenchError(
            f"{phase}: moto holds {len(tags)} instances, expected exactly the "
            f"{len(resource_ids)} created (missing {len(resource_ids - set(tags))}, "
            f"unexpected {len(set(tags) - resource_ids)})"
        )


# -- the plain boto3 loop ---------------------------------------------------------------


def plain_loop(moto: MotoServer, catalog: Catalog, load: Load, *, name: str) -> Phase:
    """What a script would do to leave at the provider the same N instances as Lariba:
    look up the AMI and the default VPC once, then one instance at a time: its own tagged
    security group (Lariba gives each instance its own firewall), ``run_instances`` with
    Lariba's parameters, ``describe_instances`` until it is running."""
    ec2 = ec2_client(moto.endpoint_url)
    size, image = catalog.size(SIZE), catalog.image(IMAGE)
    if size is None or image is None:
        raise SetupError(f"the aws catalog has no size {SIZE!r} or no image {IMAGE!r}")
    instance_type = cast("InstanceTypeType", size.provider["instance_type"])
    project_id = str(uuid.uuid4())
    resource_ids: set[str] = set()
    fresh_moto(moto, ec2)
    meter = Meter(moto, {"client": own_cpu_seconds})
    meter.start()
    started = time.perf_counter()
    images = ec2.describe_images(
        Owners=[str(image.provider["owner"])],
        Filters=[
            {"Name": "name", "Values": [str(image.provider["ami_name"])]},
            {"Name": "state", "Values": ["available"]},
        ],
    )["Images"]
    ami = max(images, key=lambda i: (i.get("CreationDate", ""), i.get("ImageId", "")))["ImageId"]
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    for index in range(load.count):
        resource_id = str(uuid.uuid4())
        resource_ids.add(resource_id)
        tags: list[TagTypeDef] = [
            {"Key": TAG_RESOURCE_ID, "Value": resource_id},
            {"Key": TAG_PROJECT_ID, "Value": project_id},
            {"Key": "Name", "Value": f"bench-{index:04d}"},
        ]
        group_id = ec2.create_security_group(
            GroupName=f"lariba-{resource_id}",
            Description="Lariba instance firewall",
            VpcId=vpcs[0]["VpcId"],
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
        )["GroupId"]
        request: RunInstancesRequestTypeDef = {
            "ImageId": ami,
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": False,
                    "Groups": [group_id],
                    "DeleteOnTermination": True,
                }
            ],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        instance_id = ec2.run_instances(**request)["Instances"][0]["InstanceId"]
        _wait_running(ec2, instance_id, deadline=started + load.timeout_seconds)
    seconds = time.perf_counter() - started
    cpu, requests = meter.stop()
    _check_moto_holds(ec2, resource_ids, name)
    return Phase(name=name, seconds=seconds, moto_requests=requests, cpu=cpu)


def _wait_running(ec2: EC2Client, instance_id: str, *, deadline: float) -> None:
    while True:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        state = reservations[0]["Instances"][0].get("State", {}).get("Name")
        if state == "running":
            return
        if state != "pending" or time.perf_counter() > deadline:
            raise BenchError(f"plain boto3 loop: instance {instance_id} is {state}")
        time.sleep(0.05)


# -- Lariba -------------------------------------------------------------------------------


@dataclass
class _ApiRun:
    """What the client saw of one Lariba phase."""

    resource_ids: set[str] = field(default_factory=set)
    post_ms: list[float] = field(default_factory=list)
    posted_seconds: float = math.nan
    seconds: float = math.nan
    picked_up_s: list[float] = field(default_factory=list)
    succeeded_s: list[float] = field(default_factory=list)


def _expect(response: httpx.Response, status: int, action: str) -> Any:
    if response.status_code != status:
        raise BenchError(f"{action}: HTTP {response.status_code} {response.text[:500]}")
    return response.json()


async def _pages(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = {"limit": "200"}
    while True:
        page = _expect(await client.get(path, params=params), 200, f"GET {path}")
        items += page["items"]
        if not page.get("next_cursor"):
            return items
        params["cursor"] = page["next_cursor"]


async def _sign_up(client: httpx.AsyncClient) -> str:
    """Signs a user up and logs the client in as them; returns the id of a new project."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": _PASSWORD}
    _expect(await client.post("/v1/auth/signup", json=credentials), 201, "sign up")
    tokens = _expect(
        await client.post("/v1/auth/token", data={"username": email, "password": _PASSWORD}),
        200,
        "log in",
    )
    client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    project = _expect(
        await client.post("/v1/projects", json={"name": "bench-instances"}), 201, "create a project"
    )
    project_id: str = project["id"]
    return project_id


async def _post_creates(
    client: httpx.AsyncClient, project_id: str, load: Load, run: _ApiRun
) -> None:
    indexes = iter(range(load.count))

    async def sender() -> None:
        for index in indexes:
            body = {"name": f"bench-{index:04d}", "size": SIZE, "image": IMAGE}
            sent = time.perf_counter()
            response = await client.post(f"/v1/projects/{project_id}/instances", json=body)
            run.post_ms.append((time.perf_counter() - sent) * 1000)
            run.resource_ids.add(_expect(response, 202, "POST an instance")["resource"]["id"])

    await asyncio.gather(*(sender() for _ in range(load.post_connections)))


async def _wait_all_running(client: httpx.AsyncClient, project_id: str, *, deadline: float) -> None:
    """Returns when the API lists no instance of the project on its way to running."""
    params: dict[str, str | list[str]] = {"status": list(_NOT_RUNNING), "limit": "1"}
    while True:
        page = _expect(
            await client.get(f"/v1/projects/{project_id}/instances", params=params),
            200,
            "GET instances",
        )
        if not page["items"]:
            return
        oldest = page["items"][0]
        if oldest["status"] not in _ON_THE_WAY:
            raise BenchError(
                f"instance {oldest['id']} is {oldest['status']}: {oldest.get('status_reason')}"
            )
        if time.perf_counter() > deadline:
            raise BenchError("timed out waiting for the instances to be running")
        await asyncio.sleep(STATUS_POLL_SECONDS)


def _seconds_between(start: str | None, end: str | None) -> float:
    if start is None or end is None:
        return math.nan
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def _check_api_state(
    client: httpx.AsyncClient, project_id: str, run: _ApiRun, phase: str
) -> None:
    """Every instance created is running, and its create operation succeeded."""
    instances = await _pages(client, f"/v1/projects/{project_id}/instances")
    listed = {item["id"] for item in instances}
    not_running = [item for item in instances if item["status"] != "running"]
    if listed != run.resource_ids or not_running:
        raise BenchError(
            f"{phase}: the API lists {len(listed)} instances, {len(not_running)} not running; "
            f"{len(run.resource_ids)} were created"
        )
    operations = await _pages(client, f"/v1/projects/{project_id}/operations")
    creates = [op for op in operations if op["type"] == "create"]
    failed = [op for op in creates if op["status"] != "succeeded"]
    if failed:
        raise BenchError(
            f"{phase}: {len(failed)} create operations did not succeed; the first is "
            f"{failed[0]['status']}: {failed[0]['error']}"
        )
    if {op["resource"]["id"] for op in creates} != run.resource_ids:
        raise BenchError(f"{phase}: the create operations do not match the instances created")
    run.picked_up_s = [_seconds_between(op["created_at"], op["started_at"]) for op in creates]
    run.succeeded_s = [_seconds_between(op["created_at"], op["finished_at"]) for op in creates]


async def _drive_api(
    api: UvicornServer, load: Load, *, before: Callable[[], None], meter: Meter, phase: str
) -> tuple[_ApiRun, dict[str, float], int]:
    """Signs up, calls ``before``, then times the N POSTs until all instances are running;
    returns what the client saw, and the meter's CPU and moto requests."""
    run = _ApiRun()
    limits = httpx.Limits(max_connections=load.post_connections + 1)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60.0, limits=limits) as client:
        project_id = await _sign_up(client)
        before()
        meter.start()
        started = time.perf_counter()
        await _post_creates(client, project_id, load, run)
        run.posted_seconds = time.perf_counter() - started
        await _wait_all_running(client, project_id, deadline=started + load.timeout_seconds)
        run.seconds = time.perf_counter() - started
        cpu, requests = meter.stop()
        await _check_api_state(client, project_id, run, phase)
    return run, cpu, requests


def _lariba_env(
    base: dict[str, str], *, url: str, data_dir: Path, secret_key: str, load: Load
) -> dict[str, str]:
    env = base | {
        "LARIBA_DATABASE_URL": url,
        "LARIBA_DATA_DIR": str(data_dir),
        "LARIBA_SECRET_KEY": secret_key,
        "LARIBA_LOG_LEVEL": "WARNING",
        # Only the `lariba worker` processes counted run jobs.
        "LARIBA_WORKER_IN_PROCESS": "false",
        "LARIBA_WORKER_CONCURRENCY": str(load.worker_concurrency),
        # Room for all N instances in the one project, whatever the size's vCPUs.
        "LARIBA_QUOTA_INSTANCES": str(load.count),
        "LARIBA_QUOTA_VCPUS": str(load.count * 64),
    }
    if load.reconcile_poll_seconds is not None:
        env["LARIBA_RECONCILE_POLL_SECONDS"] = str(load.reconcile_poll_seconds)
    return env


def _wait_registered(url: str, workers: list[ServerProcess]) -> None:
    """Returns once every worker has registered with procrastinate: it then takes jobs."""
    deadline = time.monotonic() + 60.0
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            for worker in workers:
                worker.check_alive()
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            if row is not None and row[0] >= len(workers):
                return
            time.sleep(0.1)
    raise SetupError(f"{len(workers)} workers did not register within 60 s")


def _job_profile(url: str, *, slots: int, seconds: float) -> JobProfile:
    """How the reconcile jobs ran, from procrastinate's events: run times, the wait from
    due to started, and how busy the job slots were."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            """
            SELECT j.args ->> 'resource_id',
                   extract(epoch FROM min(e.at) FILTER (WHERE e.type = 'started')
                       - greatest(min(e.at) FILTER (WHERE e.type = 'deferred'), j.scheduled_at)),
                   extract(epoch FROM max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed'))
                       - min(e.at) FILTER (WHERE e.type = 'started'))
            FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id
            WHERE j.task_name = %s
            GROUP BY j.id
            ORDER BY j.id
            """,
            (RECONCILE_TASK,),
        ).fetchall()
    seen: set[str] = set()
    first_ms: list[float] = []
    later_ms: list[float] = []
    due_to_started: list[float] = []
    for resource_id, waited, ran in rows:
        if ran is None:
            continue
        (later_ms if resource_id in seen else first_ms).append(float(ran) * 1000)
        seen.add(resource_id)
        if waited is not None:
            due_to_started.append(max(0.0, float(waited)))
    busy = (sum(first_ms) + sum(later_ms)) / 1000
    return JobProfile(
        first_ms=first_ms,
        later_ms=later_ms,
        due_to_started_s=due_to_started,
        slots_busy=busy / (slots * seconds),
    )


@dataclass
class LaribaStack:
    """A fresh database, the API and ``workers`` worker processes on it, for one phase.
    ``close`` stops the processes and drops the database."""

    workers: int
    url: str
    api: UvicornServer
    processes: list[ServerProcess]
    close: Callable[[], None]

    @property
    def name(self) -> str:
        return f"lariba, {self.workers} worker{'s' if self.workers > 1 else ''}"

    def wait_ready(self) -> None:
        self.api.wait_ready("/readyz")
        _wait_registered(self.url, self.processes)


def start_lariba(
    *,
    workers: int,
    postgres: PostgresServer,
    load: Load,
    base_env: dict[str, str],
    workdir: Path,
) -> LaribaStack:
    """Creates and migrates the database, and starts the processes (``wait_ready``
    waits for them)."""
    stack = contextlib.ExitStack()
    try:
        url = stack.enter_context(new_database(postgres.url))
        secret_key = secrets.token_urlsafe(48)
        data_dir = workdir / f"data-{workers}"
        prepare_database(url, Settings(database_url=url, data_dir=data_dir, secret_key=secret_key))
        env = _lariba_env(base_env, url=url, data_dir=data_dir, secret_key=secret_key, load=load)
        api = UvicornServer.start(
            name=f"api-{workers}w", factory="bench.lariba_app:create_app", env=env, workdir=workdir
        )
        stack.callback(api.stop)
        processes: list[ServerProcess] = []
        for index in range(workers):
            worker = start_worker(name=f"worker-{workers}w-{index + 1}", env=env, workdir=workdir)
            stack.callback(worker.stop)
            processes.append(worker)
    except BaseException:
        stack.close()
        raise
    return LaribaStack(workers=workers, url=url, api=api, processes=processes, close=stack.close)


def lariba_phase(
    lariba: LaribaStack, *, postgres: PostgresServer, moto: MotoServer, load: Load
) -> Phase:
    """N creates through the API until all are running, then the stack is closed."""
    try:
        api, processes = lariba.api, lariba.processes
        ec2 = ec2_client(moto.endpoint_url)
        meter = Meter(
            moto,
            {
                "client": own_cpu_seconds,
                "api": api.cpu_seconds,
                "workers": lambda: sum(p.cpu_seconds() for p in processes),
                "postgres": postgres.cpu_seconds,
            },
        )
        progress(f"{lariba.name}: creating {load.count} instances")
        try:
            run, cpu, requests = asyncio.run(
                _drive_api(
                    api, load, before=lambda: fresh_moto(moto, ec2), meter=meter, phase=lariba.name
                )
            )
        finally:
            for process in (api, *processes):
                process.check_alive()
        _check_moto_holds(ec2, run.resource_ids, lariba.name)
        slots = lariba.workers * load.worker_concurrency
        return Phase(
            name=lariba.name,
            workers=lariba.workers,
            seconds=run.seconds,
            moto_requests=requests,
            cpu=cpu,
            posted_seconds=run.posted_seconds,
            post_ms=run.post_ms,
            picked_up_s=run.picked_up_s,
            succeeded_s=run.succeeded_s,
            jobs=_job_profile(lariba.url, slots=slots, seconds=run.seconds),
        )
    finally:
        lariba.close()
