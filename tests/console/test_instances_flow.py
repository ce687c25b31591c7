"""An instance's life in the console: created from the form, watched to `running` live
(no reload), stopped, in a real browser."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.fixtures.console import (
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)


def test_create_instance_and_watch_it_run_then_stop(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Analytical Engine")

    page.get_by_role("link", name="Instances").click()
    page.get_by_role("link", name="Create instance").click()
    page.get_by_label("Name").fill("web-1")
    page.get_by_label("User data").fill("#!/bin/sh\necho hello from web-1\nexec sleep 600\n")
    page.get_by_label("Firewall rules").fill("tcp 8080 127.0.0.1/32")
    screenshot(page, "instance-create")
    page.get_by_role("button", name="Create instance").click()

    expect(page).to_have_url(re.compile(rf"/projects/{project_id}/instances/[0-9a-f-]{{36}}$"))
    page.evaluate("window.__sameDocument = true")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("running", timeout=30_000)
    # The status changed in place: the same document, never reloaded.
    assert page.evaluate("window.__sameDocument === true")
    screenshot(page, "instance-detail")
    instance_url = page.url

    # The script's output, once the sandboxed shell has printed it.
    page.get_by_role("link", name="Console output").click()
    deadline = time.monotonic() + 20
    while "hello from web-1" not in page.locator("pre.console").inner_text():
        assert time.monotonic() < deadline, page.locator("pre.console").inner_text()
        time.sleep(0.5)
        page.reload()

    page.goto(instance_url)
    page.get_by_role("button", name="Stop").click()
    expect(heading).to_contain_text("stopped", timeout=30_000)

    labels = page.get_by_role("textbox", name="Labels")
    labels.fill("Not Valid=x")
    page.get_by_role("button", name="Save labels").click()
    expect(page.get_by_role("textbox", name="Labels")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#labels-error")).to_be_visible()
    page.get_by_role("textbox", name="Labels").fill("env=prod, team=web")
    page.get_by_role("button", name="Save labels").click()
    expect(page.locator(".facts")).to_contain_text("env=prod")

    page.get_by_role("link", name="Instances").first.click()
    row = page.get_by_role("row", name=re.compile("web-1"))
    expect(row).to_contain_text("stopped")
    screenshot(page, "instances")


def test_invalid_form_shows_the_api_error_next_to_the_field(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "grace@example.com", name="Grace")
    project_id = create_project_in_browser(page, "Compiler")
    page.goto(f"/projects/{project_id}/instances/new")
    page.get_by_label("Name").fill("Not A Valid Name!")
    page.get_by_label("Firewall rules").fill("tcp 22 999.1.2.3/8")
    page.get_by_role("button", name="Create instance").click()

    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#name-error")).to_be_visible()
    expect(name).to_have_value("Not A Valid Name!")
    expect(page.locator("#firewall-error")).to_be_visible()
