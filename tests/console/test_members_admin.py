"""Members and platform admin pages in a real browser: an invitation passed on and
accepted, a role changed, a user disabled by an admin, and /admin refused to others."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import psycopg
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.engine import make_url

from tests.fixtures.console import (
    PASSWORD,
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)


def _token(server: ConsoleServer, email: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/auth/token", data={"username": email, "password": PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _api(server: ConsoleServer, token: str, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"})


def _sign_up(server: ConsoleServer, email: str, *, name: str) -> None:
    httpx.post(
        f"{server.url}/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "display_name": name},
    ).raise_for_status()


def _make_platform_admin(server: ConsoleServer, email: str) -> None:
    """Test setup: the test server has no bootstrapped admin, so one is made in SQL (before
    the person signs in: a live session's rights are cached for a second)."""
    url = make_url(server.database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as connection:
        connection.execute("UPDATE users SET is_platform_admin = true WHERE email = %s", (email,))


def test_invitation_accepted_then_the_owner_makes_the_member_a_viewer(
    page: Page, browser: Browser, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "owner@example.com", name="Olive")
    project_id = create_project_in_browser(page, "Difference Engine")
    page.get_by_role("link", name="Members").click()
    expect(page).to_have_url(re.compile(rf"/projects/{project_id}/members$"))

    page.get_by_label("E-mail").fill("not an address")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_label("E-mail")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email-error")).to_be_visible()

    page.get_by_label("E-mail").fill("grace@example.com")
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Invite").click()
    link = page.locator("#invite-link").inner_text().strip()
    assert link.startswith(f"{console_server.url}/invitations/")
    expect(page.get_by_role("row", name=re.compile("grace@example.com"))).to_contain_text("member")

    # The invitee, signed up elsewhere, follows the link: sign in first, then accept.
    _sign_up(console_server, "grace@example.com", name="Grace")
    invitee_context = browser.new_context(base_url=console_server.url)
    try:
        invitee = invitee_context.new_page()
        invitee.goto(urlsplit(link).path)
        expect(invitee).to_have_url(re.compile(r"/login\?next=%2Finvitations%2F"))
        invitee.get_by_label("E-mail").fill("grace@example.com")
        invitee.get_by_label("Password").fill(PASSWORD)
        invitee.get_by_role("button", name="Sign in").click()
        expect(invitee.get_by_role("heading", level=1)).to_have_text("Join a project")
        invitee.get_by_role("button", name="Accept invitation").click()
        expect(invitee).to_have_url(re.compile(rf"/projects/{project_id}$"))
        expect(invitee.locator(".sidebar-title")).to_contain_text("member")
        # A member sees the list but none of the admins' controls.
        invitee.goto(f"/projects/{project_id}/members")
        expect(invitee.get_by_role("button", name="Invite")).to_have_count(0)
        expect(invitee.get_by_role("button", name="Leave project")).to_be_visible()
    finally:
        invitee_context.close()

    page.reload()
    expect(page.get_by_text("No pending invitations.")).to_be_visible()
    page.get_by_label("Role of grace@example.com").select_option("viewer")
    page.get_by_role("button", name="Change role of grace@example.com").click()
    expect(page.get_by_role("status").first).to_contain_text("role was changed")
    expect(page.get_by_label("Role of grace@example.com")).to_have_value("viewer")
    screenshot(page, "members")

    members = _api(
        console_server,
        _token(console_server, "owner@example.com"),
        f"/v1/projects/{project_id}/members",
    ).json()["items"]
    roles = {m["email"]: m["role"] for m in members}
    assert roles == {"owner@example.com": "owner", "grace@example.com": "viewer"}


def test_admin_disables_a_user_whose_next_page_is_the_login(
    page: Page, browser: Browser, console_server: ConsoleServer
) -> None:
    user_context = browser.new_context(base_url=console_server.url)
    try:
        user = user_context.new_page()
        sign_up_in_browser(user, "mallory@example.com", name="Mallory")
        create_project_in_browser(user, "Side Project")

        _sign_up(console_server, "root@example.com", name="Root")
        _make_platform_admin(console_server, "root@example.com")
        page.goto("/login")
        page.get_by_label("E-mail").fill("root@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.on("dialog", lambda dialog: dialog.accept())
        page.get_by_role("link", name="Admin").click()
        expect(page).to_have_url(re.compile(r"/admin$"))

        row = page.get_by_role("row", name=re.compile("mallory@example.com"))
        expect(row).to_contain_text("active")
        row.get_by_role("button", name="Disable").click()
        expect(page.get_by_role("status").first).to_contain_text("disabled")
        row = page.get_by_role("row", name=re.compile("mallory@example.com"))
        expect(row).to_contain_text("disabled")
        expect(row.get_by_role("button", name="Enable")).to_be_visible()
        screenshot(page, "admin")

        admin_token = _token(console_server, "root@example.com")
        users = _api(console_server, admin_token, "/v1/admin/users?email=mallory").json()
        assert [u["is_active"] for u in users["items"]] == [False]

        user.goto("/projects")
        expect(user).to_have_url(re.compile(r"/login\?next=%2Fprojects$"))
    finally:
        user_context.close()

    page.get_by_role("link", name="Projects", exact=True).last.click()
    expect(page).to_have_url(re.compile(r"/admin/projects$"))
    row = page.get_by_role("row", name=re.compile("Side Project"))
    expect(row).to_contain_text("mallory@example.com")
    expect(row).to_contain_text("1")
    row.get_by_role("link", name=re.compile("Quotas")).click()
    # Not a member of the project: its current limits are not shown, the form still works.
    expect(page.locator(".alert-warn")).to_contain_text("members only")
    page.get_by_label("Instances").fill("3")
    page.get_by_role("button", name="Save quotas").click()
    expect(page.get_by_role("status")).to_contain_text("saved")
    expect(page.get_by_label("Instances")).to_have_value("3")

    page.get_by_role("link", name="Server errors").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("Server errors")


def test_a_user_who_is_not_a_platform_admin_gets_403_at_admin(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    for path in ("/admin", "/admin/projects", "/admin/errors"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
