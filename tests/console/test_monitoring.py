"""The alerts, webhooks, activity and audit log pages, in a real browser: forms that show
the API's errors at their fields, a webhook's secret shown once, the delivery log and its
replay, the activity feed, the audit log's filters and its export."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy.engine import make_url

from tests.fixtures.console import (
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)

# A literal public address: accepted when the webhook is saved without any DNS lookup.
# The webhooks made with it subscribe to budget events only, which these tests never
# cause, so nothing is ever sent there.
PUBLIC_RECEIVER = "https://93.184.215.14/lariba"


def _accept_dialogs(page: Page) -> None:
    def accept(dialog: Dialog) -> None:
        dialog.accept()

    page.on("dialog", accept)


def _create_webhook(api: httpx.Client, project_id: str, **body: Any) -> dict[str, Any]:
    response = api.post(
        f"/v1/projects/{project_id}/webhooks",
        json={"url": PUBLIC_RECEIVER, "event_types": ["budget.threshold_crossed"], **body},
    )
    assert response.status_code == 201, response.text
    webhook: dict[str, Any] = response.json()
    return webhook


def test_alert_rule_from_the_form_with_errors_at_their_fields(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Watched")
    _accept_dialogs(page)

    page.get_by_role("link", name="Alerts").click()
    page.get_by_role("link", name="Create alert rule").click()
    page.get_by_label("Name").fill("month spend")
    page.get_by_text("The project's cost").click()
    # The metric's fields give way to the cost's.
    expect(page.get_by_label("Metric", exact=True)).to_be_hidden()
    page.get_by_label("Measure").select_option("end_of_month_forecast")
    page.get_by_label("Alert when the value is").select_option(">=")
    page.get_by_label("Threshold").fill("lots")
    page.get_by_label("Window").fill("5m")
    page.get_by_role("button", name="Create alert rule").click()

    threshold = page.get_by_label("Threshold")
    expect(threshold).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#threshold-error")).to_contain_text("decimal")
    expect(threshold).to_have_value("lots")
    expect(page.get_by_label("Name")).to_have_value("month spend")
    expect(page.get_by_label("Measure")).to_have_value("end_of_month_forecast")

    threshold.fill("500")
    page.get_by_role("button", name="Create alert rule").click()
    # The month's forecast takes no window: the API says so at that field.
    expect(page.locator("#window-error")).to_be_visible()
    page.get_by_label("Window").fill("")
    page.get_by_role("button", name="Create alert rule").click()

    expect(page).to_have_url(re.compile(rf"/projects/{project_id}/alerts/[0-9a-f-]{{36}}$"))
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("month spend")
    expect(page.locator(".facts")).to_contain_text("value >= 500 USD")

    page.get_by_role("link", name="Alerts").first.click()
    row = page.get_by_role("row", name=re.compile("month spend"))
    expect(row).to_contain_text("the month's forecast cost")
    expect(row).to_contain_text(re.compile("insufficient data|ok"))
    screenshot(page, "alerts")

    api = console_server.api(console_server.api_token("ada@example.com"))
    (rule,) = api.get(f"/v1/projects/{project_id}/alerts").json()["items"]
    assert rule["source"] == {"type": "cost", "measure": "end_of_month_forecast"}
    assert (rule["comparison"], rule["threshold"], rule["window"]) == (">=", "500", None)

    row.get_by_role("link", name="month spend").click()
    page.get_by_role("button", name="Disable").click()
    expect(heading).to_contain_text("disabled")
    assert api.get(f"/v1/projects/{project_id}/alerts/{rule['id']}").json()["enabled"] is False
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No alert rules yet.")).to_be_visible()
    assert api.get(f"/v1/projects/{project_id}/alerts").json()["items"] == []


def test_metric_rule_names_the_resource_and_a_missing_one_is_an_error(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "grace@example.com", name="Grace")
    project_id = create_project_in_browser(page, "Stored")
    page.goto(f"/projects/{project_id}/alerts/new")
    page.get_by_label("Name").fill("no resource")
    page.get_by_label("Threshold").fill("10")
    page.get_by_label("Window").fill("5m")
    page.get_by_role("button", name="Create alert rule").click()
    expect(page.locator("#resource_id-error")).to_be_visible()

    api = console_server.api(console_server.api_token("grace@example.com"))
    response = api.post(f"/v1/projects/{project_id}/buckets", json={"name": "logs-1"})
    assert response.status_code == 202, response.text
    page.reload()
    page.get_by_label("Resource").select_option(label="bucket · logs-1")
    page.get_by_label("Metric", exact=True).select_option("storage_bytes")
    page.get_by_label("Aggregate").select_option("max")
    page.get_by_label("Threshold").fill("1000000")
    page.get_by_role("button", name="Create alert rule").click()
    expect(page.locator(".facts")).to_contain_text("max of storage_bytes of bucket logs-1 over 5m")


def test_webhook_create_refuses_loopback_and_shows_the_secret_once(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Hooked")

    page.get_by_role("link", name="Webhooks").click()
    page.get_by_role("link", name="Create webhook").click()
    url = page.get_by_label("URL")
    url.fill("https://127.0.0.1:8443/hook")
    page.get_by_role("button", name="Create webhook").click()
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#url-error")).to_contain_text("loopback")
    expect(url).to_have_value("https://127.0.0.1:8443/hook")

    url.fill(PUBLIC_RECEIVER)
    page.get_by_label("Description").fill("budget watcher")
    page.get_by_label("Every resource event").uncheck()
    page.get_by_label("Every alert event").uncheck()
    page.get_by_label("budget.threshold_crossed").check()
    page.get_by_role("button", name="Create webhook").click()

    secret_box = page.locator("code.secret")
    expect(secret_box).to_have_text(re.compile(r"^whsec_[A-Za-z0-9_-]{43}$"))
    expect(page.locator("button[data-copy-from=webhook-secret]")).to_be_visible()
    secret = secret_box.inner_text()
    # The address bar now shows the webhook's own page: reloading it does not post again.
    expect(page).to_have_url(re.compile(rf"/projects/{project_id}/webhooks/[0-9a-f-]{{36}}$"))
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text(PUBLIC_RECEIVER)
    expect(page.locator(".secret")).to_have_count(0)
    assert secret not in page.content()

    api = console_server.api(console_server.api_token("ada@example.com"))
    (webhook,) = api.get(f"/v1/projects/{project_id}/webhooks").json()["items"]
    assert webhook["url"] == PUBLIC_RECEIVER
    assert webhook["event_types"] == ["budget.threshold_crossed"]
    assert webhook["description"] == "budget watcher"

    _accept_dialogs(page)
    page.get_by_role("button", name="Rotate secret").click()
    expect(secret_box).to_have_text(re.compile(r"^whsec_"))
    assert secret_box.inner_text() != secret


def _point_at(server: ConsoleServer, webhook_id: str, url: str) -> None:
    """Repoints a saved webhook, as a receiver name whose DNS changed after it was saved:
    the check at every send is what stops it then."""
    dsn = make_url(server.database_url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn:
        conn.execute(
            "UPDATE webhooks SET url = %s, event_types = %s WHERE id = %s",
            (url, ["*"], webhook_id),
        )


def _wait_for_attempts(api: httpx.Client, path: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items: list[dict[str, Any]] = api.get(path).json()["items"]
        if items and all(d["attempts"] for d in items):
            return items
        time.sleep(0.2)
    raise AssertionError("no delivery was attempted within 20 s")


def test_delivery_log_shows_refused_attempts_and_replays(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Delivered")
    api = console_server.api(console_server.api_token("ada@example.com"))
    webhook = _create_webhook(api, project_id)
    _point_at(console_server, webhook["id"], "https://127.0.0.1:9/lariba")
    assert api.post(f"/v1/projects/{project_id}/buckets", json={"name": "logs-1"}).is_success
    deliveries_path = f"/v1/projects/{project_id}/webhooks/{webhook['id']}/deliveries"
    _wait_for_attempts(api, deliveries_path)

    _accept_dialogs(page)
    page.goto(f"/projects/{project_id}/webhooks/{webhook['id']}")
    row = page.get_by_role("row", name=re.compile("operation.pending"))
    expect(row).to_contain_text("pending")
    row.get_by_text("Attempts", exact=True).click()
    expect(row).to_contain_text("refused")
    # Nothing may be replayed while it waits for its retry.
    expect(row.get_by_role("button", name="Replay")).to_have_count(0)

    # Disabling gives up the waiting deliveries; enabled again, they can be replayed.
    page.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("failed")
    page.get_by_role("button", name="Enable").click()
    row.get_by_role("button", name="Replay").click()
    expect(row).to_contain_text("replay 1")
    page.get_by_label("Status", exact=True).select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row", name=re.compile("operation.pending"))).to_have_count(0)
    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_role("button", name="Filter").click()
    replayed_row = page.get_by_role("row", name=re.compile("operation.pending"))
    replayed_row.get_by_text("Attempts", exact=True).click()
    expect(replayed_row).to_contain_text("refused")
    screenshot(page, "webhooks")

    replayed = [d for d in api.get(deliveries_path).json()["items"] if d["series"] == 2]
    assert [d["event_type"] for d in replayed] == ["operation.pending"]


def test_activity_shows_the_project_and_alert_creation(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Lively")
    api = console_server.api(console_server.api_token("ada@example.com"))
    response = api.post(
        f"/v1/projects/{project_id}/alerts",
        json={
            "name": "cost today",
            "source": {"type": "cost", "measure": "window"},
            "comparison": ">",
            "threshold": "5",
            "window": "1d",
        },
    )
    assert response.status_code == 201, response.text

    page.get_by_role("link", name="Activity", exact=True).click()
    feed = page.locator("ol.feed")
    expect(feed).to_contain_text("ada@example.com created project Lively")
    expect(feed.locator("li").first).to_contain_text("cost today")
    screenshot(page, "activity")


def test_audit_log_filters_and_exports(page: Page, console_server: ConsoleServer) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Accountable")
    api = console_server.api(console_server.api_token("ada@example.com"))
    _create_webhook(api, project_id, description="finance")
    for name in ("cpu", "spend"):
        response = api.post(
            f"/v1/projects/{project_id}/alerts",
            json={
                "name": name,
                "source": {"type": "cost", "measure": "month_to_date"},
                "comparison": ">",
                "threshold": "100",
            },
        )
        assert response.status_code == 201, response.text

    page.get_by_role("link", name="Audit log").click()
    table = page.locator("table")
    expect(table).to_contain_text("project.create")
    expect(table).to_contain_text("webhook.create")
    expect(table.locator("tbody tr")).to_have_count(4)

    page.get_by_label("Action").fill("alert.")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).not_to_contain_text("project.create")
    screenshot(page, "audit")

    with page.expect_download() as info:
        page.get_by_role("link", name="Export as JSON lines").click()
    download = info.value
    assert download.suggested_filename.endswith(".jsonl")
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.endswith("}\n")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(e["action"], e["details"].get("name")) for e in lines] == [
        ("alert.create", "cpu"),
        ("alert.create", "spend"),
    ]

    # A bad time window is the API's error at its field.
    page.get_by_label("From (UTC)").fill("2030-01-02T00:00")
    page.get_by_label("To (UTC)").fill("2030-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#from-error")).to_contain_text("before")
