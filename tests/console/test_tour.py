"""A newcomer's first session, in a real browser and nothing but the console: sign up,
create a project, run an instance (watched to `running` live) and stop it, put a file in a
bucket and get it back, create a database and reveal its connection string — then find
each step in the usage report and the audit log."""

from __future__ import annotations

import re
import time

import psycopg
from playwright.sync_api import FilePayload, Page, expect

from tests.fixtures.console import (
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)

REPORT = b"quarter,revenue\nQ1,1843\nQ2,1952\n" * 50


def _wait_in_place(page: Page, text: str) -> None:
    """The page's heading reaches ``text`` through live events, without a reload."""
    page.evaluate("window.__sameDocument = true")
    expect(page.get_by_role("heading", level=1)).to_contain_text(text, timeout=45_000)
    assert page.evaluate("window.__sameDocument === true")


def test_first_session_in_the_console(page: Page, console_server: ConsoleServer) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    screenshot(page, "sign-in")
    sign_up_in_browser(page, "ada@example.com", name="Ada")
    project_id = create_project_in_browser(page, "Analytical Engine")

    # An instance: created from the form, running without a reload, then stopped.
    page.get_by_role("link", name="Instances").click()
    page.get_by_role("link", name="Create instance").click()
    page.get_by_label("Name").fill("web-1")
    page.get_by_label("User data").fill("#!/bin/sh\necho ready\nexec sleep 600\n")
    page.get_by_role("button", name="Create instance").click()
    _wait_in_place(page, "running")
    page.get_by_role("button", name="Stop").click()
    _wait_in_place(page, "stopped")

    # A bucket: a file uploaded from the page and downloaded back, byte for byte.
    page.get_by_role("link", name="Buckets").click()
    page.get_by_label("Name").fill("reports")
    page.get_by_role("button", name="Create bucket").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("available", timeout=30_000)
    page.get_by_label("Choose files to upload").set_input_files(
        files=[FilePayload(name="q.csv", mimeType="text/csv", buffer=REPORT)]
    )
    row = page.get_by_role("row", name=re.compile(r"q\.csv"))
    expect(row).to_be_visible()
    with page.expect_download() as download:
        row.get_by_role("link", name="Download").click()
    assert download.value.path().read_bytes() == REPORT

    # A database: created, available without a reload, its connection string revealed.
    page.get_by_role("link", name="Databases").click()
    page.get_by_role("link", name="Create database").click()
    page.get_by_label("Name").fill("ledger")
    page.get_by_role("button", name="Create database").click()
    _wait_in_place(page, "available")
    page.get_by_role("button", name="Reveal password").click()
    uri = page.locator("#connection-uri.secret").inner_text().strip()
    with psycopg.connect(uri, connect_timeout=10) as connection:
        assert connection.execute("select current_database()").fetchone() is not None

    # Usage: the instance's running time and the database are metered.
    page.get_by_role("link", name="Usage & cost").click()
    deadline = time.monotonic() + 20
    while page.locator("#month-to-date").inner_text() == "$0.00":
        assert time.monotonic() < deadline, "no usage metered"
        time.sleep(0.5)
        page.reload()
    for name in ("web-1", "ledger"):
        expect(page.get_by_role("row", name=re.compile(name)).first).to_be_visible()
    screenshot(page, "tour-usage")

    # The audit log has every step, each by Ada.
    page.get_by_role("link", name="Audit log").click()
    log = page.locator("main table")
    for action in (
        "project.create",
        "instance.create",
        "instance.stop",
        "bucket.create",
        "object.presign",
        "database.create",
        "database.credentials.reveal",
    ):
        expect(log).to_contain_text(action)
    # The upload and the download are each an audited link to the same key.
    expect(log.get_by_role("row", name=re.compile(r"object\.presign"))).to_have_count(2)
    screenshot(page, "tour-audit")

    token = console_server.api_token("ada@example.com")
    with console_server.api(token) as api:
        audit = api.get(f"/v1/projects/{project_id}/audit", params={"limit": 100}).json()
    presigns = [e for e in audit["items"] if e["action"] == "object.presign"]
    assert sorted(e["details"]["method"] for e in presigns) == ["GET", "PUT"]
    assert {e["details"]["key"] for e in presigns} == {"q.csv"}
    assert {e["actor_label"] for e in audit["items"]} == {"ada@example.com"}
