"""Several ``lariba worker`` processes on one database: they never work one resource at
once, never create an instance twice, and pick up the jobs of a worker that died."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
from mypy_boto3_ec2.client import EC2Client

from lariba.core.jobs import libpq_url
from lariba.providers.base import Provider
from tests.fixtures.cloud import (
    act,
    cloud_client,
    cloud_settings,
    create_instance,
    delete_all_instances,
    get_instance,
    wait_for_operation,
)
from tests.fixtures.faults import FaultProxy, aws_compute_behind
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.moto import dummy_session
from tests.fixtures.operations import Step, drive
from tests.fixtures.workers import lariba_workers, local_instances

TAG_RESOURCE_ID = "lariba:resource-id"
RECONCILE_TASK = "reconcile_resource"


@dataclass
class DoingJobs:
    """What a watcher polling ``procrastinate_jobs`` saw of the reconcile jobs running."""

    snapshots: int = 0
    busiest: int = 0
    worker_ids: set[int] = field(default_factory=set)
    # Snapshots in which two running jobs held the same resource lock.
    overlaps: list[list[str]] = field(default_factory=list)


@asynccontextmanager
async def watching_doing_jobs(database_url: str) -> AsyncIterator[DoingJobs]:
    """Every 20 ms, one consistent read of the running reconcile jobs."""
    seen = DoingJobs()

    async def watch() -> None:
        async with await psycopg.AsyncConnection.connect(
            libpq_url(database_url), autocommit=True
        ) as connection:
            while True:
                rows = await (
                    await connection.execute(
                        "SELECT lock, worker_id FROM procrastinate_jobs"
                        " WHERE status = 'doing' AND task_name = %s",
                        (RECONCILE_TASK,),
                    )
                ).fetchall()
                seen.snapshots += 1
                seen.busiest = max(seen.busiest, len(rows))
                seen.worker_ids |= {row[1] for row in rows if row[1] is not None}
                locks = Counter(row[0] for row in rows)
                if any(count > 1 for count in locks.values()):
                    seen.overlaps.append(sorted(locks.elements()))
                await asyncio.sleep(0.02)

    task = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class JobRun:
    """One run of a reconcile job, from ``started`` to its end, on PostgreSQL's clock."""

    lock: str
    job_id: int
    worker_id: int | None
    started_at: datetime
    ended_at: datetime | None
    ended_by: str | None


async def reconcile_runs(database_url: str, *, settle_within: float = 10) -> list[JobRun]:
    """Every run of every reconcile job, from procrastinate's event log: unlike polling,
    this misses none, however short. A job's end is logged just after its pass committed
    (an operation can read `succeeded` a moment before its job does), so this waits up to
    ``settle_within`` seconds for every started run to have ended."""
    deadline = time.monotonic() + settle_within
    while True:
        runs = await _logged_runs(database_url)
        if all(run.ended_by is not None for run in runs) or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.1)


async def _logged_runs(database_url: str) -> list[JobRun]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        rows = await (
            await connection.execute(
                """
                SELECT lock, job_id, worker_id, at, ended_at, ended_by FROM (
                    SELECT j.lock, e.job_id, j.worker_id, e.type, e.at,
                           lead(e.at) OVER (PARTITION BY e.job_id ORDER BY e.id) AS ended_at,
                           lead(e.type::text) OVER (PARTITION BY e.job_id ORDER BY e.id)
                               AS ended_by
                      FROM procrastinate_events e
                      JOIN procrastinate_jobs j ON j.id = e.job_id
                     WHERE j.task_name = %s
                ) events
                WHERE type = 'started'
                ORDER BY at
                """,
                (RECONCILE_TASK,),
            )
        ).fetchall()
    return [JobRun(*row) for row in rows]


def overlapping_runs(runs: list[JobRun]) -> list[tuple[JobRun, JobRun]]:
    """Pairs of runs of one resource's jobs that were running at the same time."""
    by_lock: dict[str, list[JobRun]] = defaultdict(list)
    for run in runs:
        by_lock[run.lock].append(run)
    overlaps = []
    for lock_runs in by_lock.values():
        lock_runs.sort(key=lambda run: run.started_at)
        for earlier, later in itertools.pairwise(lock_runs):
            if earlier.ended_at is None or later.started_at < earlier.ended_at:
                overlaps.append((earlier, later))
    return overlaps


def every_ec2_instance(ec2: EC2Client) -> list[dict[str, Any]]:
    """All of moto's instances, terminated ones included: a duplicate created and later
    cleaned up still shows."""
    return [
        {
            "id": instance["InstanceId"],
            "state": instance["State"]["Name"],
            "resource_id": {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}.get(
                TAG_RESOURCE_ID
            ),
        }
        for reservation in ec2.describe_instances()["Reservations"]
        for instance in reservation["Instances"]
    ]


INSTANCES = 20
CYCLED = 6  # of them stopped and started again while the others still converge


async def test_two_workers_never_work_one_resource_at_once_nor_create_twice(
    tmp_path: Path, test_database_url: str, moto_endpoint: str
) -> None:
    settings = cloud_settings(
        tmp_path,
        provider="aws",
        aws_endpoint_url=moto_endpoint,
        quota_instances=INSTANCES,
        quota_vcpus=2 * INSTANCES,
        # Twenty creates at once, each holding the project's row lock for its quota check.
        db_pool_size=10,
    )
    ec2 = dummy_session().client("ec2", endpoint_url=moto_endpoint)
    async with cloud_client(settings, test_database_url, run_worker=False) as client:
        with lariba_workers(settings, test_database_url) as workers:
            await workers.start(2)
            user = await sign_up(client)
            pid = (await create_project(client, user))["id"]

            async with watching_doing_jobs(test_database_url) as doing:
                created = await asyncio.gather(
                    *(
                        create_instance(
                            client, user, pid, name=f"web-{n}", size="micro",
                            image="amazon-linux-2023",
                        )
                        for n in range(INSTANCES)
                    )
                )  # fmt: skip
                ids = [op["resource"]["id"] for op in created]
                cycles: dict[str, list[Step]] = {
                    i: [partial(act, client, user, pid, i, a) for a in ("stop", "start")]
                    for i in ids[:CYCLED]
                }
                operations = await drive(client, user, created, then=cycles)
            assert len(operations) == INSTANCES + 2 * CYCLED
            failed = [op for op in operations if op["status"] != "succeeded"]
            assert not failed, (failed, workers.logs())

            # Exactly one EC2 instance per resource, ever, each the one Lariba recorded.
            instances = await asyncio.gather(*(get_instance(client, user, pid, i) for i in ids))
            assert [i["status"] for i in instances] == ["running"] * INSTANCES
            ec2_instances = every_ec2_instance(ec2)
            assert sorted((i["resource_id"] or "untagged") for i in ec2_instances) == sorted(ids)
            assert {i["resource_id"]: (i["id"], i["state"]) for i in ec2_instances} == {
                i["id"]: (i["provider_id"], "running") for i in instances
            }

            # No two runs of one resource's jobs overlapped, by the event log (complete)
            # and by the watcher (what was running at once, seen live).
            runs = await reconcile_runs(test_database_url)
            assert len(runs) >= INSTANCES + 2 * CYCLED
            # Every run ended by itself: no job was taken from a worker judged dead while
            # it still ran (there the job log would not show an overlap of the passes).
            assert all(run.ended_by == "succeeded" for run in runs), runs
            assert overlapping_runs(runs) == []
            assert doing.overlaps == []
            assert doing.snapshots > 50 and doing.busiest > 1, doing
            # Both workers did the work, and resources moved from one worker to the other,
            # so the lock was exercised across processes, not by luck of placement.
            assert {run.worker_id for run in runs} == workers.worker_ids
            assert doing.worker_ids == workers.worker_ids
            workers_per_resource = defaultdict(set)
            for run in runs:
                workers_per_resource[run.lock].add(run.worker_id)
            assert any(len(w) == 2 for w in workers_per_resource.values()), workers_per_resource

            deletes = await drive(
                client, user, [await act(client, user, pid, i, "delete") for i in ids], then={}
            )
            assert [op["status"] for op in deletes] == ["succeeded"] * INSTANCES, workers.logs()
            assert {i["state"] for i in every_ec2_instance(ec2)} == {"terminated"}


# Stops slowly: on SIGTERM it says so, then takes 3 s to exit, so a worker can be killed
# while its stop call waits for the instance. "ready": the trap is set (an instance is
# running as soon as its supervisor is, before its script has even started).
STOPS_SLOWLY = (
    "trap 'echo got-sigterm; sleep 3; exit 0' TERM\necho ready\nwhile :; do sleep 0.2; done\n"
)
STOPPED_MID_WAY = 3


async def _console(client: httpx.AsyncClient, user: TestUser, pid: str, iid: str) -> str:
    response = await client.get(f"/v1/projects/{pid}/instances/{iid}/console", headers=user.headers)
    assert response.status_code == 200, response.text
    output: str = response.json()["output"]
    return output


async def _wait_for_consoles(
    client: httpx.AsyncClient, user: TestUser, pid: str, ids: list[str], text: str, count: int = 1
) -> None:
    """Until ``text`` is ``count`` times in the console of every instance of ``ids``."""
    consoles: list[str] = []
    for _ in range(300):
        consoles = [await _console(client, user, pid, i) for i in ids]
        if all(console.count(text) >= count for console in consoles):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not {count} times in every console: {consoles}")


async def _doing_jobs(database_url: str, resource_ids: list[str]) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        rows = await (
            await connection.execute(
                "SELECT lock, id FROM procrastinate_jobs WHERE status = 'doing' AND lock = ANY(%s)",
                ([f"resource:{i}" for i in resource_ids],),
            )
        ).fetchall()
    return {row[0].removeprefix("resource:"): row[1] for row in rows}


async def _events_of(database_url: str, job_ids: list[int]) -> dict[int, list[str]]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        rows = await (
            await connection.execute(
                "SELECT job_id, type::text FROM procrastinate_events"
                " WHERE job_id = ANY(%s) ORDER BY id",
                (job_ids,),
            )
        ).fetchall()
    events: dict[int, list[str]] = defaultdict(list)
    for job_id, kind in rows:
        events[job_id].append(kind)
    return events


async def test_worker_killed_mid_stop_is_replaced_and_the_stops_complete(
    tmp_path: Path, test_database_url: str
) -> None:
    settings = cloud_settings(tmp_path, provider="local", local_compute_enabled=True)
    async with (
        local_instances(settings) as compute,
        cloud_client(settings, test_database_url, run_worker=False) as client,
    ):
        with lariba_workers(settings, test_database_url) as workers:
            [first] = await workers.start()
            user = await sign_up(client)
            pid = (await create_project(client, user))["id"]
            created = await asyncio.gather(
                *(
                    create_instance(
                        client, user, pid, name=f"slow-{n}", size="nano", image="shell",
                        user_data=STOPS_SLOWLY,
                    )
                    for n in range(STOPPED_MID_WAY)
                )
            )  # fmt: skip
            ids = [op["resource"]["id"] for op in created]
            done = await asyncio.gather(*(wait_for_operation(client, user, op) for op in created))
            assert [op["status"] for op in done] == ["succeeded"] * STOPPED_MID_WAY, done

            await _wait_for_consoles(client, user, pid, ids, "ready")
            stops = [await act(client, user, pid, i, "stop") for i in ids]
            # Each instance got its SIGTERM: every stop call is waiting on its instance.
            await _wait_for_consoles(client, user, pid, ids, "got-sigterm")
            stalled = await _doing_jobs(test_database_url, ids)
            assert sorted(stalled) == sorted(ids)
            first.kill()
            assert first.process.returncode == -signal.SIGKILL
            for op in stops:
                response = await client.get(
                    f"/v1/projects/{pid}/operations/{op['id']}", headers=user.headers
                )
                assert response.json()["status"] == "running"

            await workers.start()
            stopped = await asyncio.gather(
                *(wait_for_operation(client, user, op, within=30) for op in stops)
            )
            assert [op["status"] for op in stopped] == ["succeeded"] * STOPPED_MID_WAY, (
                stopped,
                workers.logs(),
            )
            for iid in ids:
                assert (await get_instance(client, user, pid, iid))["status"] == "stopped"
            # The dead worker's jobs were handed back and finished by the new one.
            events = await _events_of(test_database_url, list(stalled.values()))
            assert sorted(events) == sorted(stalled.values())
            for kinds in events.values():
                assert "deferred_for_retry" in kinds and kinds[-1] == "succeeded", events
            # One instance per resource at the provider, each stopped.
            at_provider = await compute.list_instances(region="local")
            assert sorted((str(i.resource_id), i.state.value) for i in at_provider) == sorted(
                (iid, "stopped") for iid in ids
            )

            # Nothing is left half-done: they start and delete as usual.
            started = await asyncio.gather(
                *[
                    wait_for_operation(client, user, await act(client, user, pid, i, "start"))
                    for i in ids
                ]
            )
            assert [op["status"] for op in started] == ["succeeded"] * STOPPED_MID_WAY
            # Booted again before deleting (else the delete's SIGTERM may come before the
            # script exists, and the stop waits out its whole grace period).
            await _wait_for_consoles(client, user, pid, ids, "ready", count=2)
            deleted = await asyncio.gather(
                *[
                    wait_for_operation(client, user, await act(client, user, pid, i, "delete"))
                    for i in ids
                ]
            )
            assert [op["status"] for op in deleted] == ["succeeded"] * STOPPED_MID_WAY
            for iid in ids:
                assert (await get_instance(client, user, pid, iid))["status"] == "deleted"
            assert await compute.list_instances(region="local") == []


async def test_worker_running_more_passes_than_its_pool_has_connections_converges(
    tmp_path: Path, test_database_url: str
) -> None:
    api_settings = cloud_settings(tmp_path, provider="local", local_compute_enabled=True)
    # Legal settings: four jobs at once, two pooled connections (db_pool_size + overflow).
    worker_settings = api_settings.model_copy(update={"db_pool_size": 1, "worker_concurrency": 4})
    async with (
        local_instances(api_settings) as compute,
        cloud_client(api_settings, test_database_url, run_worker=False) as client,
    ):
        with lariba_workers(worker_settings, test_database_url) as workers:
            await workers.start()
            user = await sign_up(client)
            pid = (await create_project(client, user))["id"]
            created = await asyncio.gather(
                *(
                    create_instance(
                        client, user, pid, name=f"web-{n}", size="nano", image="shell",
                        user_data="exec sleep 600\n",
                    )
                    for n in range(4)
                )
            )  # fmt: skip
            done = await asyncio.gather(
                *(wait_for_operation(client, user, op, within=15) for op in created)
            )
            assert [op["status"] for op in done] == ["succeeded"] * 4, workers.logs()
            runs = await reconcile_runs(test_database_url)
            assert all(run.ended_by == "succeeded" for run in runs), workers.logs()
            assert len(await compute.list_instances(region="local")) == 4


async def _lateness_of_scheduled_jobs(database_url: str) -> list[float]:
    """For each reconcile job deferred to run later: seconds between when it was due and
    when a worker started it."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as connection:
        rows = await (
            await connection.execute(
                "SELECT extract(epoch FROM min(e.at) - j.scheduled_at)::float"
                "  FROM procrastinate_jobs j"
                "  JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'started'"
                " WHERE j.task_name = %s AND j.scheduled_at IS NOT NULL"
                " GROUP BY j.id, j.scheduled_at",
                (RECONCILE_TASK,),
            )
        ).fetchall()
    return [row[0] for row in rows]


async def test_a_requeued_pass_runs_when_due_not_at_the_workers_next_poll(
    tmp_path: Path, test_database_url: str, fault_proxy: FaultProxy
) -> None:
    settings = cloud_settings(tmp_path, provider="aws")
    compute = aws_compute_behind(fault_proxy, max_attempts=1)
    async with cloud_client(
        settings, test_database_url, provider=Provider("aws", compute)
    ) as client:  # one worker, idle
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        # Throttled creates back off: each pass is deferred to run a moment later.
        for n in range(3):
            fault_proxy.fail_next("RunInstances", "throttle")
            created = await create_instance(
                client, user, pid, name=f"web-{n}", size="micro", image="amazon-linux-2023"
            )
            assert (await wait_for_operation(client, user, created))["status"] == "succeeded"
        await delete_all_instances(client, user, pid)
    lateness = await _lateness_of_scheduled_jobs(test_database_url)
    assert lateness
    # With procrastinate's 5 s default poll, three waits below 3 s happen a fifth of the
    # time; with the worker polling every 0.2 s they are the rule, even on a busy machine.
    assert len(lateness) >= 3
    assert max(lateness) < 3.0, lateness
