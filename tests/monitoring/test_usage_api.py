"""Usage and cost through the API, metered from real lifecycles on the local provider:
exact to the event, unchanged by a second worker, priced from the catalog."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.monitoring.usage.models import UsageRequestCount, UsageSegment
from lariba.monitoring.usage.requests import RequestMeter
from lariba.monitoring.usage.service import FOCUS_COLUMNS
from tests.fixtures.buckets import create_bucket, objects_url, put_object
from tests.fixtures.cloud import (
    act,
    cloud_app,
    cloud_client,
    cloud_settings,
    create_instance,
    wait_for_operation,
)
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.usage import running_seconds, seconds, usage_by_resource

SCRIPT = "exec sleep 600\n"
MICRO = Decimal("0.000001")


async def test_instance_usage_is_the_time_between_its_events_by_size(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    """Start, stop, start, resize while running: every second of ``running`` is counted
    once at the size it ran at, with two workers sharing the passes."""
    settings = cloud_settings(tmp_path, local_compute_enabled=True)
    async with (
        cloud_app(settings, test_database_url) as (_first, client),
        cloud_app(settings, test_database_url) as (_second, other),
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(client, user, pid, size="nano", user_data=SCRIPT)
        iid = created["resource"]["id"]
        steps = [("stop", None), ("start", None), ("resize", {"size": "small"}), ("stop", None)]
        assert (await wait_for_operation(client, user, created))["status"] == "succeeded"
        for turn, (action, body) in enumerate(steps):
            api = (client, other)[turn % 2]
            done = await wait_for_operation(api, user, await act(api, user, pid, iid, action, body))
            assert done["status"] == "succeeded", done

        stretches = await running_seconds(db, iid)
        # nano: created → stop, start → the resize's stop; small: after the resize → stop.
        assert len(stretches) == 3
        usage = await usage_by_resource(client, user, pid)
        assert usage == {
            (iid, "instance", "nano"): (stretches[0] + stretches[1]).quantize(MICRO),
            (iid, "instance", "small"): stretches[2].quantize(MICRO),
        }
        segments = list(
            await db.scalars(select(UsageSegment).where(UsageSegment.resource_id == uuid.UUID(iid)))
        )
        assert len(segments) == 3
        assert all(s.ended_at is not None for s in segments)

        cost = await client.get(
            f"/v1/projects/{pid}/cost",
            params={"group_by": ["resource", "meter"], "from": "2000-01-01T00:00:00Z"},
            headers=user.headers,
        )
        assert cost.status_code == 200, cost.text
        body = cost.json()
        expected_nano = usage[(iid, "instance", "nano")] / 3600 * Decimal("0.002")
        expected_small = usage[(iid, "instance", "small")] / 3600 * Decimal("0.004")
        by_sku = {item["sku"]: Decimal(item["cost_usd"]) for item in body["items"]}
        assert abs(by_sku["nano"] - expected_nano) <= MICRO
        assert abs(by_sku["small"] - expected_small) <= MICRO
        assert Decimal(body["total_usd"]) == sum(by_sku.values())
        assert body["currency"] == "USD"
        # Stopped: nothing runs, so the month ends where it stands.
        assert Decimal(body["forecast"]["run_rate_usd_per_hour"]) == 0
        assert body["forecast"]["end_of_month_usd"] == body["forecast"]["month_to_date_usd"]


async def test_a_running_instance_forecasts_its_hourly_price(
    tmp_path: Path, test_database_url: str
) -> None:
    settings = cloud_settings(tmp_path, local_compute_enabled=True)
    async with cloud_client(settings, test_database_url) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(client, user, pid, size="medium", user_data=SCRIPT)
        assert (await wait_for_operation(client, user, created))["status"] == "succeeded"

        response = await client.get(f"/v1/projects/{pid}/cost", headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["group_by"] == ["resource_kind"]
        # (The test's own requests may be in it too, as soon as its API saved them.)
        [item] = [i for i in body["items"] if i["resource_kind"] != "project"]
        assert item["resource_kind"] == "instance"
        assert Decimal(item["cost_usd"]) >= 0  # a fraction of a second at $0.008 an hour
        forecast = body["forecast"]
        assert Decimal(forecast["run_rate_usd_per_hour"]) == Decimal("0.008")
        assert Decimal(forecast["end_of_month_usd"]) > Decimal(forecast["month_to_date_usd"])

        usage = await client.get(
            f"/v1/projects/{pid}/usage", params={"group_by": "day"}, headers=user.headers
        )
        [row] = [i for i in usage.json()["items"] if i["meter"] != "api_requests"]
        assert (row["meter"], row["sku"], row["unit"], row["metered_unit"]) == (
            "instance",
            "medium",
            "Hours",
            "Seconds",
        )
        assert row["day"] is not None
        assert Decimal(row["quantity"]) == (Decimal(row["metered_quantity"]) / 3600).quantize(MICRO)
        await act(client, user, pid, created["resource"]["id"], "delete")


async def test_bucket_storage_is_metered_by_bytes_held(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_client(cloud_settings(tmp_path), test_database_url) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name=f"usage-{uuid.uuid4().hex[:8]}")
        for key, size in (("a", 1000), ("b", 3000)):
            uploaded = await put_object(client, client, user, pid, bid, key, b"x" * size)
            assert uploaded.status_code == 200, uploaded.text
        deleted = await client.delete(
            objects_url(pid, bid), params={"key": "a"}, headers=user.headers
        )
        assert deleted.status_code == 204, deleted.text

        await db.rollback()
        segments = list(
            await db.scalars(
                select(UsageSegment)
                .where(UsageSegment.resource_id == uuid.UUID(bid))
                .order_by(UsageSegment.started_at)
            )
        )
        assert [(s.meter, s.quantity) for s in segments] == [
            ("bucket_storage", Decimal(1000)),
            ("bucket_storage", Decimal(4000)),
            ("bucket_storage", Decimal(3000)),
        ]
        closed = sum(
            (
                s.quantity * seconds(s.ended_at - s.started_at)
                for s in segments[:2]
                if s.ended_at is not None
            ),
            Decimal(0),
        )
        usage = await usage_by_resource(client, user, pid)
        metered = usage[(bid, "bucket_storage", "bytes")]
        # The last segment is still open: it counts until the report's now.
        assert metered > closed.quantize(MICRO)


async def test_focus_export_lists_each_resource_day_with_its_cost(
    tmp_path: Path, test_database_url: str
) -> None:
    settings = cloud_settings(tmp_path, local_compute_enabled=True)
    async with cloud_client(settings, test_database_url) as client:
        user = await sign_up(client)
        project = await create_project(client, user, name="shop")
        pid = project["id"]
        created = await create_instance(
            client, user, pid, name="api-1", size="small", user_data=SCRIPT, labels={"team": "a"}
        )
        assert (await wait_for_operation(client, user, created))["status"] == "succeeded"
        iid = created["resource"]["id"]
        await wait_for_operation(client, user, await act(client, user, pid, iid, "stop"))

        response = await client.get(f"/v1/projects/{pid}/cost/export", headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert list(rows[0]) == list(FOCUS_COLUMNS)
        [row] = [r for r in rows if r["ResourceType"] != "project"]
        assert row["ResourceId"] == iid
        assert row["ResourceName"] == "api-1"
        assert row["ResourceType"] == "instance"
        assert row["SkuId"] == "instance:small"
        assert row["BillingAccountName"] == "shop"
        assert row["PricingUnit"] == "Hours"
        assert row["ListUnitPrice"] == "0.004"
        assert row["ChargeDescription"] == "Instance time while running, size small"
        assert row["Tags"] == '{"team": "a"}'
        cost = (await client.get(f"/v1/projects/{pid}/cost", headers=user.headers)).json()
        assert Decimal(row["BilledCost"]) == Decimal(cost["total_usd"])


async def test_report_windows_and_groups_are_validated(
    tmp_path: Path, test_database_url: str
) -> None:
    async with cloud_client(cloud_settings(tmp_path), test_database_url) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        url = f"/v1/projects/{pid}/usage"

        backwards = await client.get(
            url, params={"from": "2026-02-01", "to": "2026-01-01"}, headers=user.headers
        )
        assert backwards.status_code == 422
        assert backwards.json()["code"] == "invalid_window"
        assert "earlier" in backwards.text

        unknown = await client.get(url, params={"group_by": "colour"}, headers=user.headers)
        assert unknown.status_code == 422
        assert "group_by" in unknown.text

        empty = await client.get(
            url, params={"from": "2026-01-01", "to": "2026-01-02"}, headers=user.headers
        )
        assert empty.status_code == 200, empty.text
        body = empty.json()
        assert body["items"] == []
        assert body["from"] == "2026-01-01T00:00:00Z"
        assert body["to"] == "2026-01-02T00:00:00Z"

        stranger = await sign_up(client)
        foreign = await client.get(url, headers=stranger.headers)
        assert foreign.status_code == 404


async def test_api_requests_count_against_the_project_they_acted_within(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    pid = (await create_project(client, alice))["id"]
    mallory = await sign_up(client)
    meter: RequestMeter = app.state.request_meter
    await meter.flush()
    for _ in range(3):
        listed = await client.get(f"/v1/projects/{pid}/instances", headers=alice.headers)
        assert listed.status_code == 200
    invalid = await client.post(f"/v1/projects/{pid}/buckets", json={}, headers=alice.headers)
    assert invalid.status_code == 422  # asked of the project, answered: it counts
    # Not counted: another tenant probing the id, and no credentials at all.
    probe = await client.get(f"/v1/projects/{pid}/instances", headers=mallory.headers)
    assert probe.status_code == 404
    assert (await client.get(f"/v1/projects/{pid}/instances")).status_code == 401
    assert await meter.flush() == 4

    await db.rollback()
    stored = await db.scalar(
        select(func.sum(UsageRequestCount.requests)).where(
            UsageRequestCount.project_id == uuid.UUID(pid)
        )
    )
    assert stored == 4
    usage = await usage_by_resource(client, alice, pid, requests=True)
    # The report itself was asked within the project, after the flush: not in it yet.
    assert usage == {(pid, "api_requests", "requests"): Decimal(4)}
