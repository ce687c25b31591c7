"""Databases in the console, in a real browser on the local provider's PostgreSQL: created
from the form and watched to `available` live, the revealed connection string connects,
the API's refusals show next to the fields, snapshots are taken and restored, and a
viewer gets no buttons that change anything."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.console import (
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)


def _available_database(
    server: ConsoleServer, token: str, project_id: str, name: str
) -> dict[str, Any]:
    return server.create(
        token,
        f"/v1/projects/{project_id}/databases",
        {"name": name, "size": "small", "storage_gb": 1},
        until="available",
    )


def test_create_a_database_watch_it_become_available_and_connect_with_the_revealed_string(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "edgar@example.com", name="Edgar")
    project_id = create_project_in_browser(page, "Relational")

    page.get_by_role("link", name="Databases").click()
    page.get_by_role("link", name="Create database").click()
    page.get_by_label("Name").fill("orders")
    page.get_by_role("radio", name=re.compile(r"^medium ")).check()
    page.get_by_label("Storage (GB)").fill("2")
    page.get_by_label("Labels").fill("team=billing")
    page.get_by_role("button", name="Create database").click()

    # The page answering the form shows the password once, at the database's own address.
    expect(page).to_have_url(re.compile(rf"/projects/{project_id}/databases/[0-9a-f-]{{36}}$"))
    database_id = page.url.rsplit("/", 1)[1]
    once = page.locator("#database-password")
    expect(once).to_be_visible()
    password_at_creation = once.inner_text().strip()
    assert len(password_at_creation) >= 24
    assert password_at_creation not in page.url

    page.evaluate("window.__sameDocument = true")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("available", timeout=30_000)
    assert page.evaluate("window.__sameDocument === true")
    expect(page.locator("#connection-masked")).to_contain_text(":********@127.0.0.1:")
    expect(page.get_by_text("Open connections")).to_be_visible()

    # A reload is the plain page: the password is not shown again.
    page.reload()
    expect(heading).to_contain_text("available")
    expect(page.locator("#database-password")).to_have_count(0)
    assert password_at_creation not in page.content()
    screenshot(page, "database-detail")

    with page.expect_response(re.compile(r"/reveal$")) as answer:
        page.get_by_role("button", name="Reveal password").click()
    assert answer.value.headers["cache-control"] == "no-store"
    expect(page).to_have_url(re.compile(rf"/databases/{database_id}$"))
    uri = page.locator("#connection-uri.secret").inner_text().strip()
    assert uri.startswith("postgresql://") and password_at_creation in uri
    expect(page.get_by_role("button", name="Copy connection string")).to_be_visible()

    with psycopg.connect(uri, connect_timeout=10) as connection:
        assert connection.execute("select 1").fetchone() == (1,)

    page.get_by_role("link", name="Databases").first.click()
    row = page.get_by_role("row", name=re.compile("orders"))
    expect(row).to_contain_text("available")
    expect(row).to_contain_text("medium")
    expect(row).to_contain_text("2 GB")
    screenshot(page, "databases")

    token = console_server.api_token("edgar@example.com")
    with console_server.api(token) as api:
        database = api.get(f"/v1/projects/{project_id}/databases/{database_id}").json()
        audit = api.get(f"/v1/projects/{project_id}/audit").json()["items"]
    assert (database["size"], database["storage_gb"], database["labels"]) == (
        "medium",
        2,
        {"team": "billing"},
    )
    assert "database.credentials.reveal" in {entry["action"] for entry in audit}


def test_invalid_form_shows_the_api_error_next_to_the_field(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ted@example.com", name="Ted")
    project_id = create_project_in_browser(page, "Normal Forms")
    page.goto(f"/projects/{project_id}/databases/new")
    page.get_by_label("Name").fill("Bad Name!")
    page.get_by_label("Storage (GB)").fill("-5")
    page.get_by_role("button", name="Create database").click()

    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_value("Bad Name!")
    expect(page.locator("#name-error")).to_be_visible()
    storage = page.get_by_label("Storage (GB)")
    expect(storage).to_have_attribute("aria-invalid", "true")
    expect(storage).to_have_value("-5")
    expect(page.locator("#storage_gb-error")).to_contain_text("greater than or equal to 1")

    token = console_server.api_token("ted@example.com")
    with console_server.api(token) as api:
        assert api.get(f"/v1/projects/{project_id}/databases").json()["items"] == []


def test_take_a_snapshot_and_restore_it_into_a_new_database(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "jim@example.com", name="Jim")
    project_id = create_project_in_browser(page, "Snapshots")
    token = console_server.api_token("jim@example.com")
    database = _available_database(console_server, token, project_id, "ledger")

    page.goto(f"/projects/{project_id}/databases/{database['id']}")
    page.get_by_role("button", name="Take snapshot").click()
    snapshots = page.get_by_role("table", name=re.compile("Snapshots of ledger"))
    row = snapshots.get_by_role("row", name=re.compile(r"^ledger-"))
    expect(row).to_contain_text("available", timeout=30_000)

    row.get_by_role("link", name="Restore into a new database").click()
    page.get_by_label("Name of the new database").fill("ledger-copy")
    page.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("ledger-copy")
    expect(page.locator("#database-password")).to_be_visible()

    with console_server.api(token) as api:
        listed = api.get(f"/v1/projects/{project_id}/database-snapshots").json()["items"]
        copies = api.get(f"/v1/projects/{project_id}/databases").json()["items"]
    assert [(s["database_name"], s["status"]) for s in listed] == [("ledger", "available")]
    (copy,) = [d for d in copies if d["name"] == "ledger-copy"]
    assert copy["restored_from_snapshot"] == listed[0]["id"]


def test_a_viewer_sees_no_buttons_that_change_a_database(
    browser: Browser, page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "owner@example.com", name="Owner")
    project_id = create_project_in_browser(page, "Read Only")
    owner = console_server.api_token("owner@example.com")
    with console_server.api(owner) as api:
        created = api.post(
            f"/v1/projects/{project_id}/databases",
            json={"name": "reports", "size": "small", "storage_gb": 1},
        )
        assert created.status_code == 202, created.text
        invitation = api.post(
            f"/v1/projects/{project_id}/invitations",
            json={"email": "viewer@example.com", "role": "viewer"},
        ).json()

    viewer_context = browser.new_context(base_url=console_server.url)
    try:
        viewer = viewer_context.new_page()
        sign_up_in_browser(viewer, "viewer@example.com", name="Viewer")
        with console_server.api(console_server.api_token("viewer@example.com")) as api:
            accepted = api.post(f"/v1/invitations/{invitation['token']}/accept")
            assert accepted.status_code == 200, accepted.text

        viewer.goto(f"/projects/{project_id}/databases")
        expect(viewer.get_by_role("link", name="Create database")).to_have_count(0)
        viewer.get_by_role("link", name="reports").click()
        expect(viewer.get_by_role("heading", level=1)).to_contain_text("reports")
        expect(viewer.locator("main form[method=post]")).to_have_count(0)
        expect(viewer.get_by_role("button", name="Reveal password")).to_have_count(0)
    finally:
        viewer_context.close()


def test_resize_protect_reset_password_and_delete_with_a_final_snapshot(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "michael@example.com", name="Michael")
    project_id = create_project_in_browser(page, "Lifecycle")
    token = console_server.api_token("michael@example.com")
    database = _available_database(console_server, token, project_id, "events")
    detail = f"/projects/{project_id}/databases/{database['id']}"
    heading = page.get_by_role("heading", level=1)

    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(detail)
    storage = page.get_by_label("Storage (GB)")
    storage.fill("0")
    page.get_by_role("button", name="Resize").click()
    expect(storage).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#storage_gb-error")).to_be_visible()
    expect(storage).to_have_value("0")

    page.get_by_role("radio", name=re.compile(r"^large ")).check()
    page.get_by_label("Storage (GB)").fill("3")
    page.get_by_role("button", name="Resize").click()
    expect(page).to_have_url(re.compile(rf"{detail}$"))
    expect(heading).to_contain_text("available", timeout=30_000)

    page.get_by_role("button", name="Reset password").click()
    expect(page.locator("#database-password")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("New password"))).to_be_visible()

    page.goto(detail)
    page.get_by_role("button", name="Turn on deletion protection").click()
    expect(page.get_by_role("button", name="Delete database")).to_have_count(0)
    page.get_by_role("button", name="Turn off deletion protection").click()
    page.get_by_label("Take a final snapshot first").check()
    page.get_by_role("button", name="Delete database").click()
    expect(page).to_have_url(re.compile(rf"/projects/{project_id}/databases$"))

    page.get_by_role("link", name="Snapshots").click()
    row = page.get_by_role("row", name=re.compile(r"^events-.*final"))
    expect(row).to_contain_text("available", timeout=30_000)

    with console_server.api(token) as api:
        after = api.get(f"/v1/projects/{project_id}/databases/{database['id']}").json()
    assert (after["size"], after["storage_gb"]) == ("large", 3)
    assert after["deletion_protection"] is False
    assert after["status"] in ("deleting", "deleted")
