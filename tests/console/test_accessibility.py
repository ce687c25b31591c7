"""Every page works with the keyboard, names its controls for screen readers, and fits a
phone's width."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.fixtures.console import (
    PASSWORD,
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)

# Pages with forms of every kind, inside a project ("{p}").
PAGES = (
    "/projects",
    "/account",
    "/projects/{p}",
    "/projects/{p}/instances",
    "/projects/{p}/instances/new",
    "/projects/{p}/buckets",
    "/projects/{p}/databases",
    "/projects/{p}/databases/new",
    "/projects/{p}/usage",
    "/projects/{p}/metrics",
    "/projects/{p}/alerts",
    "/projects/{p}/alerts/new",
    "/projects/{p}/webhooks",
    "/projects/{p}/webhooks/new",
    "/projects/{p}/activity",
    "/projects/{p}/audit",
    "/projects/{p}/members",
    "/projects/{p}/settings",
)

# Controls a screen reader cannot name: no <label>, no aria-label(ledby), no title.
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]):not([type=submit]), select, textarea')]
  .filter(c => c.labels.length === 0 && !c.getAttribute('aria-label')
          && !c.getAttribute('aria-labelledby') && !c.title)
  .map(c => c.outerHTML)"""


def test_sign_in_with_the_keyboard_alone(page: Page, console_server: ConsoleServer) -> None:
    sign_up_in_browser(page, "kay@example.com", name="Kay")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))

    # The first stop is the skip link; it takes the keyboard to the page's content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("E-mail")).to_be_focused()
    page.keyboard.type("kay@example.com")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/projects$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Projects")


def test_every_control_is_labelled_and_pages_fit_a_narrow_screen(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "lin@example.com", name="Lin")
    project_id = create_project_in_browser(page, "Readable")

    for wide in (True, False):
        page.set_viewport_size(
            {"width": 1280, "height": 860} if wide else {"width": 375, "height": 740}
        )
        for path in PAGES:
            response = page.goto(path.format(p=project_id))
            assert response is not None and response.ok, path
            assert page.evaluate(UNLABELLED) == [], path
            assert page.locator("main h1").count() == 1, path
            if not wide:
                # Wide tables and charts scroll inside their own box; the page never does.
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, (path, overflow)
    page.goto(f"/projects/{project_id}/instances/new")
    screenshot(page, "narrow-instance-create")
