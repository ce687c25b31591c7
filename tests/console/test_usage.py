"""The usage & cost page (month to date, charts, the FOCUS download, the budget form) and
the metrics page (a running instance's series), in a real browser."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Page, expect

from lariba.core.jobs import JobQueue
from tests.fixtures.console import (
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)

# The console output says when the script runs.
SCRIPT = "echo started\nexec sleep 600\n"


@contextmanager
def running_instance(api: httpx.Client, project_id: str, name: str) -> Iterator[str]:
    """An instance created through the API, once its script has started (a sample taken
    before that finds no process of it yet); deleted afterwards, so that its process does
    not outlive the test. Gives its id."""
    size = api.get("/v1/catalog/sizes").json()["items"][0]["name"]
    image = api.get("/v1/catalog/images").json()["items"][0]["name"]
    response = api.post(
        f"/v1/projects/{project_id}/instances",
        json={"name": name, "size": size, "image": image, "user_data": SCRIPT},
    )
    assert response.status_code == 202, response.text
    instance_id: str = response.json()["resource"]["id"]
    path = f"/v1/projects/{project_id}/instances/{instance_id}"
    try:
        deadline = time.monotonic() + 30
        while "started" not in api.get(f"{path}/console").json()["output"]:
            assert time.monotonic() < deadline, f"instance {name} did not start in 30 s"
            time.sleep(0.2)
        assert api.get(path).json()["status"] == "running"
        yield instance_id
    finally:
        api.delete(path)
        deadline = time.monotonic() + 20
        while api.get(path).json()["status"] != "deleted" and time.monotonic() < deadline:
            time.sleep(0.2)


def _collect_metrics_now(server: ConsoleServer) -> None:
    """Queues the worker's metric collection at once instead of waiting for the minute's
    periodic one (its own queueing lock, so the two never collide)."""

    async def defer() -> None:
        jobs = JobQueue(server.database_url)
        await jobs.open()
        try:
            await jobs.app.configure_task(
                "collect_resource_metrics", queueing_lock=f"test-{uuid.uuid4()}"
            ).defer_async(timestamp=0)
        finally:
            await jobs.close()

    # The Playwright driver's event loop owns this thread.
    thread = threading.Thread(target=asyncio.run, args=(defer(),))
    thread.start()
    thread.join(timeout=30)


def test_usage_page_shows_cost_charts_export_and_budget(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Metered")
    api = console_server.api(console_server.api_token("ada@example.com"))
    with running_instance(api, project_id, "web-1"):
        page.get_by_role("link", name="Usage & cost").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Usage & cost")
        # The instance's meter started with `running`: the report runs it up to now.
        row = page.get_by_role("row", name=re.compile("web-1"))
        expect(row).to_contain_text("instance")
        expect(row).to_contain_text("Hours")
        month_to_date = page.locator("#month-to-date")
        for _ in range(20):
            if month_to_date.inner_text() != "$0.00":
                break
            time.sleep(0.5)
            page.reload()
        assert re.fullmatch(r"\$0\.0+[1-9]\d*", month_to_date.inner_text()), (
            month_to_date.inner_text()
        )
        cost = api.get(f"/v1/projects/{project_id}/cost").json()
        assert float(cost["forecast"]["end_of_month_usd"]) > 0
        charts = page.locator("svg[role=img]")
        expect(charts).to_have_count(2)
        expect(page.get_by_role("table", name=re.compile("Cost by resource kind"))).to_contain_text(
            "instance"
        )

        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV").click()
        assert download.value.suggested_filename.endswith(".csv")
        text = download.value.path().read_text()
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {"BillingAccountId", "ChargePeriodStart", "BilledCost", "ResourceName"} <= set(
            rows[0]
        )
        assert any(r["ResourceName"] == "web-1" and r["ServiceName"] == "Instances" for r in rows)

        # A bad amount: the API's own message, next to the field; nothing is set.
        page.get_by_label("Monthly amount (USD)").fill("-5")
        page.get_by_role("button", name="Save budget").click()
        amount = page.get_by_label("Monthly amount (USD)")
        expect(amount).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#amount_usd-error")).to_contain_text("greater than 0")
        expect(amount).to_have_value("-5")
        assert api.get(f"/v1/projects/{project_id}/budget").status_code == 404

        amount.fill("20.00")
        page.get_by_label("Notify at (percent of the amount)").fill("50, 90")
        page.get_by_label(re.compile("Refuse new instances")).check()
        page.get_by_role("button", name="Save budget").click()
        expect(page.get_by_role("status")).to_have_text("Budget saved.")
        status = page.locator("#budget-status")
        expect(status).to_contain_text("$20.00")
        expect(status).to_contain_text("90%")
        budget = api.get(f"/v1/projects/{project_id}/budget").json()
        assert budget["amount_usd"] == "20.00"
        assert budget["thresholds"] == [50, 90]
        assert budget["block_provisioning"] is True
        screenshot(page, "usage")

        # Days the API refuses (from after to): its message next to the field.
        today = datetime.now(UTC).date()
        page.get_by_label("From", exact=True).fill(today.isoformat())
        page.get_by_label("To (included)").fill((today - timedelta(days=3)).isoformat())
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#from-error")).to_contain_text("earlier than")


def test_metrics_page_charts_a_running_instance(page: Page, console_server: ConsoleServer) -> None:
    sign_up_in_browser(page, "grace@example.com", name="Grace")
    project_id = create_project_in_browser(page, "Measured")
    api = console_server.api(console_server.api_token("grace@example.com"))
    with running_instance(api, project_id, "worker-1") as instance_id:
        page.get_by_role("link", name="Metrics").click()
        expect(page.locator("#metrics-hint")).to_be_visible()
        page.get_by_label("Resource", exact=True).select_option(label="worker-1 (running)")
        page.get_by_label("Range").select_option("custom")
        # A window before the instance existed: every chart says there is no data.
        yesterday = datetime.now(UTC) - timedelta(days=1)
        page.get_by_label("From (UTC)").fill(yesterday.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_label("To (UTC)").fill(
            (yesterday + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        )
        page.get_by_role("button", name="Show").click()
        metric = page.get_by_label("Metric", exact=True)
        expect(metric.locator("option")).to_have_text(
            [
                "All of the resource's metrics",
                "cpu_percent",
                "memory_bytes",
                "network_in_bytes (not reported here)",
                "network_out_bytes (not reported here)",
            ]
        )
        expect(page.locator("svg[role=img]")).to_have_count(2)
        expect(page.get_by_text("No data in this range yet.")).to_have_count(2)

        names = f"/v1/projects/{project_id}/metrics/names"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # A collection that finds no process of the instance to measure (its script
            # still exec'ing) records nothing: ask again until one is sampled.
            _collect_metrics_now(console_server)
            time.sleep(1.5)
            items = api.get(names, params={"resource": instance_id}).json()["items"]
            if any(m["name"] == "memory_bytes" and m["latest"] for m in items):
                break
        else:
            raise AssertionError("no metric sample was collected")

        # From the instance's page, its Metrics link: the instance preselected, last hour.
        page.goto(f"/projects/{project_id}/instances/{instance_id}")
        page.get_by_role("link", name="Metrics").last.click()
        expect(page.get_by_label("Resource", exact=True)).to_have_value(instance_id)
        page.get_by_label("Metric", exact=True).select_option("memory_bytes")
        page.get_by_role("button", name="Show").click()
        chart = page.get_by_role("img", name=re.compile("memory_bytes"))
        expect(chart).to_have_count(1)
        expect(chart.locator("circle.dot")).not_to_have_count(0)
        data = page.locator("#metric-memory_bytes-data tbody tr")
        expect(data.last).to_contain_text(re.compile(r"[0-9.]+ (KiB|MiB|GiB)"))
        expect(page.get_by_role("row", name=re.compile("^memory_bytes"))).to_contain_text("iB")
        screenshot(page, "metrics")

    # A deleted instance keeps its history; an id that is not the project's is named.
    page.goto(f"/projects/{project_id}/metrics?resource={instance_id}&name=memory_bytes")
    expect(page.get_by_label("Resource", exact=True)).to_have_value(instance_id)
    expect(page.locator("#resource option:checked")).to_have_text("worker-1 (deleted)")
    expect(page.locator("#metric-memory_bytes-data tbody tr")).not_to_have_count(0)
    page.goto(f"/projects/{project_id}/metrics?resource={uuid.uuid4()}")
    expect(page.locator("#resource-error")).to_be_visible()
