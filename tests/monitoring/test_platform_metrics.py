"""GET /metrics: Prometheus text that counts requests by route template, reads the job
queue at scrape time, times reconcile passes, and counts provider errors and failed
logins; and the separate worker's own metrics port."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import procrastinate
import psutil
import pytest
from asgi_lifespan import LifespanManager
from botocore.exceptions import ClientError
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lariba.app import create_app
from lariba.core import health
from lariba.core.metrics import UNMATCHED_ROUTE, serve_metrics
from lariba.core.settings import Settings
from lariba.providers.aws.database import _classify as classify_rds_error
from lariba.providers.aws.errors import classify
from lariba.providers.base import PermanentProviderError, ProviderNotFound
from lariba.providers.catalog import load_catalog
from lariba.providers.local import LocalCompute
from tests.fixtures.app import BASE_URL
from tests.fixtures.cloud import (
    act,
    cloud_client,
    cloud_settings,
    create_instance,
    wait_for_operation,
)
from tests.fixtures.database import make_settings
from tests.fixtures.identity import TestUser, create_project, log_in, sign_up
from tests.fixtures.workers import lariba_workers, local_instances

Samples = list[Sample]


def parse(body: str) -> Samples:
    return [sample for family in text_string_to_metric_families(body) for sample in family.samples]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when the series does not exist yet."""
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return 0.0


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def requests_of(samples: Samples) -> Mapping[tuple[str, str, str], float]:
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"]): float(s.value)
        for s in samples
        if s.name == "lariba_http_requests_total"
    }


async def test_requests_are_counted_by_route_template_method_and_status(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    project_id = uuid.uuid4()
    before = await scrape(client)
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200
    missing = await client.get(f"/v1/projects/{project_id}", headers=alice.headers)
    assert missing.status_code == 404
    invalid = await client.post("/v1/projects", json={"name": 42}, headers=alice.headers)
    assert invalid.status_code == 422
    unknown = await client.get(f"/no/such/page/{project_id}")
    assert unknown.status_code == 404
    wrong_method = await client.delete("/healthz")
    assert wrong_method.status_code == 405
    after = await scrape(client)

    before_counts, after_counts = requests_of(before), requests_of(after)
    moved = {
        key: count - before_counts.get(key, 0.0)
        for key, count in after_counts.items()
        if count != before_counts.get(key, 0.0)
    }
    assert moved == {
        ("/healthz", "GET", "200"): 2,
        ("/v1/projects/{project_id}", "GET", "404"): 1,
        ("/v1/projects", "POST", "422"): 1,
        (UNMATCHED_ROUTE, "GET", "404"): 1,
        ("/healthz", "DELETE", "405"): 1,
    }
    # Raw paths never become label values, nor do the scrapes themselves.
    labels = {sample.labels.get("route") for sample in after}
    assert not any(str(project_id) in str(route) for route in labels)
    assert "/metrics" not in labels

    # The latency histogram has its buckets, and counts the same requests.
    name = "lariba_http_request_duration_seconds"
    key = {"route": "/v1/projects/{project_id}", "method": "GET", "status": "404"}
    buckets = [s for s in after if s.name == f"{name}_bucket" and s.labels.items() >= key.items()]
    assert len(buckets) > 5
    assert {s.labels["le"] for s in buckets} >= {"0.005", "1.0", "+Inf"}
    assert delta(before, after, f"{name}_bucket", le="+Inf", **key) == 1
    assert delta(before, after, f"{name}_count", **key) == 1
    assert delta(before, after, f"{name}_sum", **key) > 0


async def test_refused_body_is_counted_on_its_route(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    too_big = await client.post(
        "/v1/auth/signup",
        content=b"x" * (2 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
    after = await scrape(client)
    labels = {"route": "/v1/auth/signup", "method": "POST", "status": "413"}
    assert delta(before, after, "lariba_http_requests_total", **labels) == 1


async def test_failed_logins_are_counted_by_reason(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    before = await scrape(client)
    assert (await log_in(client, alice.email, "not-the-password")).status_code == 401
    assert (await log_in(client, alice.email, "not-the-password")).status_code == 401
    assert (await log_in(client, "nobody@example.com", "whatever-pass")).status_code == 401
    assert (await log_in(client, alice.email, alice.password)).status_code == 200
    after = await scrape(client)
    name = "lariba_login_failures_total"
    assert delta(before, after, name, reason="wrong_password") == 2
    assert delta(before, after, name, reason="unknown_user") == 1
    route = {"route": "/v1/auth/token", "method": "POST"}
    assert delta(before, after, "lariba_http_requests_total", status="401", **route) == 3
    assert delta(before, after, "lariba_http_requests_total", status="200", **route) == 1


def _tasks(app: procrastinate.App) -> None:
    @app.task(name="metrics_probe", queue="probes")
    async def metrics_probe(n: int) -> None:
        """Deferred by the test, never run: no worker."""


@pytest.fixture
async def queue_app(settings: Settings, test_database_url: str) -> AsyncIterator[FastAPI]:
    """The API with a task of the test's own and no worker: its jobs stay waiting."""
    app = create_app(
        settings, database_url=test_database_url, run_worker=False, task_registrars=(_tasks,)
    )
    async with LifespanManager(app):
        yield app


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


async def test_job_queue_depth_and_age_reflect_deferred_jobs(queue_app: FastAPI) -> None:
    labels = {"queue": "probes", "task": "metrics_probe"}
    async with await _client(queue_app) as client:
        empty = await scrape(client)
        assert value(empty, "lariba_job_queue_up") == 1
        # A task with no job is a series at zero, not a missing one.
        assert [
            s.value
            for s in empty
            if s.name == "lariba_job_queue_jobs" and s.labels == {**labels, "status": "todo"}
        ] == [0]

        async with queue_app.state.sessionmaker.begin() as session:
            ids = [
                await queue_app.state.jobs.defer(session, "metrics_probe", n=n) for n in range(3)
            ]
        # The first one has waited a minute and a half.
        async with queue_app.state.sessionmaker.begin() as session:
            await session.execute(
                text(
                    "UPDATE procrastinate_events SET at = now() - interval '90 seconds' "
                    "WHERE job_id = :id"
                ),
                {"id": ids[0]},
            )
        waiting = await scrape(client)
        assert value(waiting, "lariba_job_queue_jobs", status="todo", **labels) == 3
        assert value(waiting, "lariba_job_queue_jobs", status="doing", **labels) == 0
        age = value(waiting, "lariba_job_queue_oldest_age_seconds", status="todo", **labels)
        assert 90 <= age < 150

        # A job taken by a worker is "doing", and no longer waiting.
        async with queue_app.state.sessionmaker.begin() as session:
            await session.execute(
                text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id"),
                {"id": ids[0]},
            )
        running = await scrape(client)
    assert value(running, "lariba_job_queue_jobs", status="todo", **labels) == 2
    assert value(running, "lariba_job_queue_jobs", status="doing", **labels) == 1
    assert value(running, "lariba_job_queue_oldest_age_seconds", status="todo", **labels) < 60


async def test_a_slow_database_costs_only_the_queue_gauges(
    queue_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "_QUEUE_READ_TIMEOUT_SECONDS", 0.5)
    engine: AsyncEngine = queue_app.state.engine
    async with await _client(queue_app) as client, engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE procrastinate_jobs IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        samples = await scrape(client)
        elapsed = time.monotonic() - started
        await blocker.rollback()
    assert elapsed < 5
    assert value(samples, "lariba_job_queue_up") == 0
    assert not [s for s in samples if s.name == "lariba_job_queue_jobs"]
    assert any(s.name == "lariba_http_requests_total" for s in samples)


async def test_reconcile_passes_record_their_duration(
    tmp_path: Path, test_database_url: str
) -> None:
    settings = cloud_settings(tmp_path, local_compute_enabled=True)
    async with local_instances(settings), cloud_client(settings, test_database_url) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        before = await scrape(client)
        operation = await create_instance(
            client, user, project_id, size="nano", user_data="exec sleep 60"
        )
        assert (await wait_for_operation(client, user, operation))["status"] == "succeeded"
        after = await scrape(client)
        deleted = await act(client, user, project_id, operation["resource"]["id"], "delete")
        assert (await wait_for_operation(client, user, deleted))["status"] == "succeeded"

    name = "lariba_reconcile_pass_duration_seconds"
    converged = {"kind": "instance", "outcome": "converged"}
    assert delta(before, after, f"{name}_count", **converged) >= 1
    assert delta(before, after, f"{name}_sum", **converged) > 0
    buckets = [
        s for s in after if s.name == f"{name}_bucket" and s.labels.items() >= converged.items()
    ]
    assert {s.labels["le"] for s in buckets} >= {"0.01", "60.0", "+Inf"}


def _provider_errors(samples: Samples) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["provider"], s.labels["code"], s.labels["retriable"]): float(s.value)
        for s in samples
        if s.name == "lariba_provider_errors_total"
    }


async def test_provider_errors_are_counted_once_per_failure(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    before = _provider_errors(await scrape(client))
    local = LocalCompute(catalog=load_catalog("local"), root=tmp_path, enabled=True)
    with pytest.raises(ProviderNotFound):
        await local.describe_instance(region="local", provider_id="i-missing")
    throttled = ClientError(
        {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DescribeInstances"
    )
    assert classify(throttled).retriable
    # RDS's not-found, classified then translated again: one failure, counted once.
    gone = ClientError(
        {"Error": {"Code": "DBInstanceNotFound", "Message": "no such instance"}},
        "DescribeDBInstances",
    )
    try:
        raise gone
    except ClientError as exc:
        translated = classify_rds_error(exc)
    assert isinstance(translated, ProviderNotFound)
    # Built outside any provider (a test's fake): not a provider's error.
    PermanentProviderError("made up", code="Fake")
    after = _provider_errors(await scrape(client))

    moved = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert moved == {
        ("local", "InvalidInstanceID", "false"): 1,
        ("aws", "Throttling", "true"): 1,
        ("aws", "DBInstanceNotFound", "false"): 1,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_worker_metrics_server_serves_the_process_metrics() -> None:
    server = serve_metrics(host="127.0.0.1", port=0)
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "lariba_reconcile_pass_duration_seconds",
        "lariba_provider_errors",
        "process_cpu_seconds",
    } <= names


async def test_separate_worker_answers_on_its_metrics_port(
    tmp_path: Path, test_database_url: str
) -> None:
    port = _free_port()
    settings = make_settings(tmp_path, worker_metrics_port=port)
    with lariba_workers(settings, test_database_url) as workers:
        await workers.start()
        deadline = time.monotonic() + 10
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    response = await http.get(f"http://127.0.0.1:{port}/metrics")
                    break
                except httpx.ConnectError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
    assert response.status_code == 200
    samples = parse(response.text)
    # The worker's own process, started after this test's.
    assert value(samples, "process_start_time_seconds") > psutil.Process().create_time()
    assert "lariba_reconcile_pass_duration_seconds" in response.text
