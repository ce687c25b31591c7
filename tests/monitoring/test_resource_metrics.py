"""Resource metrics: the collector samples real instances, buckets and databases (local
provider) and CloudWatch (aws, on moto); samples roll up into hourly aggregates exactly
once, are purged after retention, and read back as series bucketed by step."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.monitoring.metrics import repository
from lariba.monitoring.metrics.collector import collect
from lariba.monitoring.metrics.models import MetricHourly, MetricSample
from lariba.monitoring.metrics.tasks import purge, roll_up
from lariba.providers.aws import AwsCompute, AwsMetrics
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
from lariba.providers.local.compute import LocalCompute
from lariba.providers.local.database_server import DatabaseServer
from lariba.providers.local.metrics import LocalMetrics, _Group
from tests.fixtures.buckets import create_bucket, put_object
from tests.fixtures.cloud import (
    cloud_app,
    cloud_settings,
    create_instance,
    delete_all_instances,
    wait_for_operation,
)
from tests.fixtures.databases import create_database, local_provider, reveal, succeeded
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.monitoring import Team, add_resource
from tests.fixtures.moto import dummy_session

BURN = "echo burning\nwhile :; do :; done\n"


def metrics_url(project_id: object, *parts: str) -> str:
    return "/".join([f"/v1/projects/{project_id}/metrics", *parts])


async def stored(db: AsyncSession, resource_id: object, name: str) -> list[float]:
    db.expire_all()
    rows = await db.scalars(
        select(MetricSample.value)
        .where(MetricSample.resource_id == uuid.UUID(str(resource_id)), MetricSample.name == name)
        .order_by(MetricSample.at)
    )
    return list(rows)


def changes(values: list[float]) -> list[float]:
    """The values with repeats in a row left out: the worker's own periodic collection
    may add samples between the ones a test takes."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


async def burning(client: httpx.AsyncClient, user: TestUser, pid: str, iid: str) -> None:
    """Waits until the instance's script has started its loop."""
    for _ in range(100):
        console = await client.get(
            f"/v1/projects/{pid}/instances/{iid}/console", headers=user.headers
        )
        if "burning" in console.json()["output"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the script did not start")


async def get_series(
    client: httpx.AsyncClient, user: TestUser, project_id: object, **params: Any
) -> dict[str, Any]:
    response = await client.get(metrics_url(project_id), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_samples(
    db: AsyncSession, resource_id: uuid.UUID, name: str, points: list[tuple[datetime, float]]
) -> None:
    db.add_all(MetricSample(resource_id=resource_id, name=name, at=t, value=v) for t, v in points)
    await db.commit()


async def test_local_instance_cpu_and_memory_are_sampled_from_its_processes(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    settings = cloud_settings(
        tmp_path, local_compute_enabled=True, metrics_local_cpu_window_seconds=0.5
    )
    async with cloud_app(settings, test_database_url) as (app, client):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(
            client, user, pid, name="burner", size="nano", user_data=BURN
        )
        iid = created["resource"]["id"]
        assert (await wait_for_operation(client, user, created))["status"] == "succeeded"
        try:
            await burning(client, user, pid, iid)
            result = await collect(app.state.cloud, batch_size=10)
            assert (result.resources, result.failures) == (1, 0)
            cpu = (await stored(db, iid, "cpu_percent"))[-1]
            memory = (await stored(db, iid, "memory_bytes"))[-1]
            # One vCPU, busy: close to 100%, and the shell's resident memory.
            assert 30 < cpu <= 100, cpu
            assert 100_000 < memory < 500_000_000, memory

            series = await get_series(client, user, pid, resource=iid, name="cpu_percent")
            assert series["resource"]["kind"] == "instance"
            assert (series["unit"], series["aggregate"], series["source"]) == (
                "percent",
                "avg",
                "raw",
            )
            assert series["points"][-1]["value"] > 30

            names = await client.get(
                metrics_url(pid, "names"), params={"resource": iid}, headers=user.headers
            )
            assert names.status_code == 200, names.text
            listed = {m["name"]: m for m in names.json()["items"]}
            assert set(listed) == {
                "cpu_percent",
                "memory_bytes",
                "network_in_bytes",
                "network_out_bytes",
            }
            assert listed["memory_bytes"]["latest"]["value"] == memory
            assert listed["cpu_percent"]["reported"] is True
            # The local provider has no per-instance network counters.
            assert listed["network_in_bytes"]["reported"] is False
            assert listed["network_in_bytes"]["latest"] is None
        finally:
            await delete_all_instances(client, user, pid)
        # A deleted instance is no longer sampled.
        assert (await collect(app.state.cloud, batch_size=10)).resources == 0


async def test_bucket_bytes_and_objects_follow_uploads(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_app(cloud_settings(tmp_path), test_database_url) as (app, client):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name="photos")
        assert (await collect(app.state.cloud, batch_size=10)).samples == 2
        for key, data in (("a.txt", b"a" * 100), ("b.txt", b"b" * 250)):
            sent = await put_object(client, client, user, pid, bid, key, data)
            assert sent.status_code == 200, sent.text
            await asyncio.sleep(0.01)  # samples of one resource and metric differ in time
            await collect(app.state.cloud, batch_size=10)
    assert changes(await stored(db, bid, "storage_bytes")) == [0, 100, 350]
    assert changes(await stored(db, bid, "object_count")) == [0, 1, 2]


async def test_database_size_and_connections_are_sampled(
    tmp_path: Path, test_database_url: str, db: AsyncSession, databases_server: DatabaseServer
) -> None:
    provider = local_provider(databases_server, tmp_path)
    async with cloud_app(cloud_settings(tmp_path), test_database_url, provider=provider) as (
        app,
        client,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_database(client, user, pid, name="orders")
        await succeeded(client, user, created)
        dbid = created["resource"]["id"]
        await collect(app.state.cloud, batch_size=10)
        uri = (await reveal(client, user, pid, dbid))["uri"]
        with psycopg.connect(uri, connect_timeout=5):
            await asyncio.sleep(0.01)
            await collect(app.state.cloud, batch_size=10)
        sizes = await stored(db, dbid, "size_bytes")
        assert len(sizes) >= 2 and all(size > 1_000_000 for size in sizes)
        assert changes(await stored(db, dbid, "connections")) == [0, 1]
        series = await get_series(
            client, user, pid, resource=dbid, name="connections", step="1d", aggregate="max"
        )
        assert series["unit"] == "connections"
        assert [p["value"] for p in series["points"]] == [1.0]


async def test_aws_instance_metrics_are_read_from_cloudwatch(
    tmp_path: Path, test_database_url: str, moto_endpoint: str
) -> None:
    settings = cloud_settings(tmp_path, provider="aws", aws_endpoint_url=moto_endpoint)
    provider = Provider(
        name="aws",
        compute=AwsCompute(
            catalog=load_catalog("aws"), endpoint_url=moto_endpoint, session=dummy_session()
        ),
        metrics=AwsMetrics(endpoint_url=moto_endpoint, session=dummy_session()),
    )
    async with cloud_app(settings, test_database_url, provider=provider) as (app, client):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(
            client, user, pid, name="api-1", size="micro", image="amazon-linux-2023"
        )
        iid = created["resource"]["id"]
        assert (await wait_for_operation(client, user, created))["status"] == "succeeded"
        instance = (
            await client.get(f"/v1/projects/{pid}/instances/{iid}", headers=user.headers)
        ).json()

        # What EC2 would publish for the instance: two one-minute datapoints, in one
        # 10-minute (and so one hourly) bucket whatever the time.
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        first, second = minute - timedelta(minutes=3), minute - timedelta(minutes=2)
        if second.minute % 10 == 0:
            first, second = first - timedelta(minutes=1), second - timedelta(minutes=1)
        dimensions = [{"Name": "InstanceId", "Value": instance["provider_id"]}]
        cloudwatch = dummy_session().client("cloudwatch", endpoint_url=moto_endpoint)
        cloudwatch.put_metric_data(
            Namespace="AWS/EC2",
            MetricData=[
                {"MetricName": metric, "Dimensions": dimensions, "Timestamp": at, "Value": value}
                for metric, at, value in (
                    ("CPUUtilization", first, 10.0),
                    ("CPUUtilization", second, 30.0),
                    ("NetworkIn", first, 1000.0),
                    ("NetworkIn", second, 2500.0),
                    ("NetworkOut", second, 400.0),
                )
            ],
        )
        result = await collect(app.state.cloud, batch_size=10)
        assert (result.resources, result.samples, result.failures) == (1, 5, 0)
        # A second collection re-reads the same datapoints: still one sample each.
        assert (await collect(app.state.cloud, batch_size=10)).samples == 5

        window = {"from": (minute - timedelta(minutes=10)).isoformat(), "to": minute.isoformat()}
        cpu = await get_series(client, user, pid, resource=iid, name="cpu_percent", **window)
        assert cpu["step"] == "1m"
        assert [(p["time"], p["value"]) for p in cpu["points"]] == [
            (first.isoformat().replace("+00:00", "Z"), 10.0),
            (second.isoformat().replace("+00:00", "Z"), 30.0),
        ]
        network = await get_series(
            client, user, pid, resource=iid, name="network_in_bytes", step="10m", **window
        )
        assert network["aggregate"] == "sum"
        assert [p["value"] for p in network["points"]] == [3500.0]
        peak = await get_series(
            client, user, pid, resource=iid, name="cpu_percent", step="1h", aggregate="max"
        )
        assert [p["value"] for p in peak["points"]] == [30.0]


async def test_rollup_aggregates_whole_hours_once(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    resource = await add_resource(db, project_id=pid, name="web")
    rid = resource.id
    base = repository.floor_hour(datetime.now(UTC)) - timedelta(hours=3)
    await add_samples(
        db,
        rid,
        "cpu_percent",
        [
            (base + timedelta(minutes=10), 1.0),
            (base + timedelta(minutes=20), 3.0),
            (base + timedelta(minutes=50), 8.0),
            (base + timedelta(hours=1, minutes=5), 10.0),
            (base + timedelta(hours=3, minutes=1), 99.0),  # the current hour: not whole yet
        ],
    )
    settings = app.state.settings
    sessionmaker = app.state.sessionmaker
    assert await roll_up(sessionmaker, settings=settings) == 1
    expected = [(base, 1.0, 8.0, 12.0, 3), (base + timedelta(hours=1), 10.0, 10.0, 10.0, 1)]
    assert await _hourly(db, rid) == expected
    # Nothing new: a second run does nothing, and a recomputation adds nothing.
    assert await roll_up(sessionmaker, settings=settings) == 0
    async with sessionmaker.begin() as session:
        await repository.roll_up_batch(
            session, now=datetime.now(UTC) + timedelta(hours=1), reroll=timedelta(hours=5)
        )
    assert await _hourly(db, rid) == [
        *expected,
        (base + timedelta(hours=3), 99.0, 99.0, 99.0, 1),
    ]


async def test_series_buckets_by_step_and_reads_hourly_aggregates_past_retention(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    resource = await add_resource(db, project_id=pid, name="web")
    rid = resource.id
    now = datetime.now(UTC)
    old = repository.floor_hour(now - timedelta(days=10))
    recent = repository.floor_hour(now - timedelta(hours=2))
    old_points = [(old + timedelta(minutes=m), float(m)) for m in (0, 20, 40, 70)]
    await add_samples(
        db,
        rid,
        "memory_bytes",
        old_points + [(recent + timedelta(minutes=m), float(100 + m)) for m in range(10)],
    )
    # Raw: 5-minute steps aligned on the step, averaged; or any aggregate asked for.
    window = {"from": recent.isoformat(), "to": (recent + timedelta(minutes=10)).isoformat()}
    series = await get_series(
        client, alice, pid, resource=rid, name="memory_bytes", step="5m", **window
    )
    assert series["source"] == "raw"
    assert [p["value"] for p in series["points"]] == [102.0, 107.0]
    counted = await get_series(
        client,
        alice,
        pid,
        resource=rid,
        name="memory_bytes",
        step="5m",
        aggregate="count",
        **window,
    )
    assert [p["value"] for p in counted["points"]] == [5.0, 5.0]
    offset = {"from": (recent + timedelta(minutes=2)).isoformat(), "to": window["to"]}
    shifted = await get_series(
        client,
        alice,
        pid,
        resource=rid,
        name="memory_bytes",
        step="5m",
        aggregate="min",
        **offset,
    )
    # ``from`` is rounded down to the step: the first point covers a whole step.
    assert [p["time"][11:16] for p in shifted["points"]] == [
        f"{recent:%H}:00",
        f"{recent:%H}:05",
    ]
    assert [p["value"] for p in shifted["points"]] == [100.0, 105.0]
    assert shifted["from"][:16] == f"{recent:%Y-%m-%dT%H}:00"

    # Rolled up, then raw samples past the 7 days of retention purged: old windows come
    # from the hourly aggregates, recent ones still from raw samples.
    settings = app.state.settings
    await roll_up(app.state.sessionmaker, settings=settings)
    await purge(app.state.sessionmaker, settings=settings)
    db.expire_all()
    assert await stored(db, rid, "memory_bytes") == [float(100 + m) for m in range(10)]
    long = {"from": (old - timedelta(hours=1)).isoformat(), "to": now.isoformat()}
    hourly = await get_series(
        client, alice, pid, resource=rid, name="memory_bytes", step="1h", **long
    )
    assert hourly["source"] == "hourly"
    assert [(p["time"][:13], p["value"]) for p in hourly["points"]] == [
        (f"{old:%Y-%m-%dT%H}", 20.0),
        (f"{old + timedelta(hours=1):%Y-%m-%dT%H}", 70.0),
        (f"{recent:%Y-%m-%dT%H}", 104.5),
    ]
    daily = await get_series(
        client,
        alice,
        pid,
        resource=rid,
        name="memory_bytes",
        step="1d",
        aggregate="max",
        **long,
    )
    first_day = [v for t, v in old_points if t.date() == old.date()]
    assert daily["points"][0]["value"] == max(first_day)
    too_many = await client.get(
        metrics_url(pid),
        params={"resource": str(rid), "name": "memory_bytes", "step": "5m", **long},
        headers=alice.headers,
    )
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["code"] == "too_many_points"
    week_ago = {
        "from": (now - timedelta(days=8)).isoformat(),
        "to": (now - timedelta(days=7, hours=20)).isoformat(),
    }
    too_fine = await client.get(
        metrics_url(pid),
        params={"resource": str(rid), "name": "memory_bytes", "step": "5m", **week_ago},
        headers=alice.headers,
    )
    assert too_fine.status_code == 422, too_fine.text
    assert too_fine.json()["code"] == "step_too_fine"
    assert too_fine.json()["errors"][0]["field"] == "step"


async def test_hourly_aggregates_are_purged_after_their_retention(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    resource = await add_resource(db, project_id=pid, name="web")
    rid = resource.id
    now = datetime.now(UTC)
    for days in (401, 399):
        db.add(
            MetricHourly(
                resource_id=rid,
                name="cpu_percent",
                hour=repository.floor_hour(now - timedelta(days=days)),
                min=1.0,
                max=1.0,
                sum=1.0,
                count=1,
            )
        )
    await add_samples(db, rid, "cpu_percent", [(now - timedelta(days=1), 5.0)])
    settings = app.state.settings
    await roll_up(app.state.sessionmaker, settings=settings)
    await purge(app.state.sessionmaker, settings=settings)
    db.expire_all()
    hours = await db.scalars(select(MetricHourly.hour).where(MetricHourly.resource_id == rid))
    assert sorted(hours) == [
        repository.floor_hour(now - timedelta(days=399)),
        repository.floor_hour(now - timedelta(days=1)),
    ]
    assert await stored(db, rid, "cpu_percent") == [5.0]


async def test_foreign_projects_and_resources_are_404_and_viewers_read(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    mine = await add_resource(db, project_id=team.project_id, name="web")
    theirs = await add_resource(db, project_id=team.outsider_project_id, name="web")
    await add_samples(db, mine.id, "cpu_percent", [(datetime.now(UTC) - timedelta(minutes=5), 7.0)])

    read = await get_series(
        client, team.viewer, team.project_id, resource=mine.id, name="cpu_percent"
    )
    assert [p["value"] for p in read["points"]] == [7.0]
    foreign_project = await client.get(
        metrics_url(team.outsider_project_id),
        params={"resource": str(theirs.id), "name": "cpu_percent"},
        headers=team.viewer.headers,
    )
    assert foreign_project.status_code == 404
    assert foreign_project.json()["code"] == "project_not_found"
    for url in (metrics_url(team.project_id), metrics_url(team.project_id, "names")):
        foreign_resource = await client.get(
            url,
            params={"resource": str(theirs.id), "name": "cpu_percent"},
            headers=team.owner.headers,
        )
        assert foreign_resource.status_code == 404, url
        assert foreign_resource.json()["code"] == "resource_not_found"

    everything = await client.get(
        metrics_url(team.project_id, "names"), headers=team.viewer.headers
    )
    assert everything.status_code == 200
    body = everything.json()
    assert body["resource"] is None
    assert {(m["kind"], m["name"], m["unit"]) for m in body["items"]} >= {
        ("bucket", "object_count", "objects"),
        ("database", "size_bytes", "bytes"),
        ("instance", "network_out_bytes", "bytes"),
    }


async def test_invalid_queries_are_422_naming_the_parameter(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    bucket = await add_resource(db, project_id=pid, name="photos", kind="bucket")
    now = datetime.now(UTC)
    base = {"resource": str(bucket.id), "name": "storage_bytes"}
    for params, field, code in (
        ({"name": "cpu_percent"}, "name", "unknown_metric"),
        (
            {"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
            "from",
            "invalid_window",
        ),
        ({"step": "5 minutes"}, "step", "invalid_step"),
        ({"step": "0s"}, "step", "invalid_step"),
        ({"step": "1s", "from": (now - timedelta(hours=1)).isoformat()}, "step", "too_many_points"),
        ({"aggregate": "median"}, "aggregate", "validation_failed"),
        ({"resource": "not-a-uuid"}, "resource", "validation_failed"),
    ):
        response = await client.get(
            metrics_url(pid), params={**base, **params}, headers=alice.headers
        )
        assert response.status_code == 422, (params, response.text)
        body = response.json()
        assert body["code"] == code, (params, body)
        assert field in body["errors"][0]["field"], (params, body)
    unknown = await client.get(
        metrics_url(pid), params={**base, "name": "cpu_percent"}, headers=alice.headers
    )
    assert "storage_bytes, object_count" in unknown.json()["detail"]


async def _hourly(db: AsyncSession, resource_id: uuid.UUID) -> list[tuple[Any, ...]]:
    db.expire_all()
    rows = await db.execute(
        select(
            MetricHourly.hour,
            MetricHourly.min,
            MetricHourly.max,
            MetricHourly.sum,
            MetricHourly.count,
        )
        .where(MetricHourly.resource_id == resource_id)
        .order_by(MetricHourly.hour)
    )
    return [tuple(row) for row in rows]


def test_local_sample_skips_an_instance_with_no_process_to_measure(tmp_path: Path) -> None:
    """A supervisor alone in its group (its script not started yet, or exec'ing) gives no
    sample at all, not a 0 B / 0 % one that would read as an idle machine."""
    catalog = load_catalog("local")
    metrics = LocalMetrics(
        compute=LocalCompute(catalog=catalog, root=tmp_path, enabled=True),
        catalog=catalog,
        cpu_window_seconds=0.1,
    )
    alone = subprocess.Popen(["sleep", "30"], start_new_session=True)
    with_script = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"], start_new_session=True)
    try:
        time.sleep(0.2)  # the second one's child is forked
        lonely, busy = uuid.uuid4(), uuid.uuid4()
        samples = metrics._measure([_Group(lonely, alone.pid, 1), _Group(busy, with_script.pid, 1)])
        assert {s.resource_id for s in samples} == {busy}
        memory = next(s.value for s in samples if s.name == "memory_bytes")
        assert memory > 100_000
    finally:
        for process in (alone, with_script):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
