"""The console's guards: another tenant's pages are 404, a viewer gets no mutating buttons
and a 403 when posting anyway, forged cross-site posts change nothing, and the session
cookie is locked down."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi.routing import APIRoute
from playwright.sync_api import Browser, Page, expect

from lariba.console.router import PAGE_MODULES
from tests.fixtures.console import (
    ConsoleServer,
    create_project_in_browser,
    csrf_token_of,
    sign_up_in_browser,
)


def _running_instance(server: ConsoleServer, token: str, project_id: str) -> dict[str, Any]:
    return server.create(
        token,
        f"/v1/projects/{project_id}/instances",
        {"name": "web-1", "size": "nano", "image": "shell", "user_data": "sleep 600"},
        until="running",
    )


def _stop(server: ConsoleServer, token: str, project_id: str, instance_id: str) -> None:
    with server.api(token) as api:
        api.post(f"/v1/projects/{project_id}/instances/{instance_id}/stop")


def _console_routes(method: str) -> list[str]:
    """Every console page inside a project, for ``method`` (the platform admin's pages
    about projects answer 403 to everyone else, as the admin API does)."""
    return sorted(
        route.path
        for pages in PAGE_MODULES
        for route in pages.router.routes
        if isinstance(route, APIRoute)
        and route.path.startswith("/projects/{project_id}")
        and method in (route.methods or ())
    )


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), path)


def test_another_tenants_pages_are_404_and_posts_change_nothing(
    browser: Browser, page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "alice@example.com", name="Alice")
    project_id = create_project_in_browser(page, "Alice's")
    token = console_server.api_token("alice@example.com")
    instance = _running_instance(console_server, token, project_id)
    ids = {"project_id": project_id, "instance_id": instance["id"], "action": "stop"}

    stranger = browser.new_context(base_url=console_server.url)
    try:
        bob = stranger.new_page()
        sign_up_in_browser(bob, "bob@example.com", name="Bob")
        pages = _console_routes("GET")
        assert len(pages) >= 5, pages
        for path in pages:
            url = _fill(path, ids)
            response = stranger.request.get(url, headers={"Accept": "text/html"})
            assert response.status == 404, (url, response.status)
            assert "Alice" not in response.text() and "web-1" not in response.text(), url

        csrf = csrf_token_of(bob)
        for path in _console_routes("POST"):
            url = _fill(path, ids)
            response = stranger.request.post(url, form={"csrf_token": csrf, "name": "stolen"})
            assert response.status == 404, (url, response.status)
    finally:
        stranger.close()

    with console_server.api(token) as api:
        after = api.get(f"/v1/projects/{project_id}/instances/{instance['id']}").json()
        projects = api.get("/v1/projects").json()["items"]
    assert after["status"] == "running" and after["generation"] == instance["generation"]
    assert [p["name"] for p in projects] == ["Alice's"]
    _stop(console_server, token, project_id, instance["id"])


def test_a_viewer_sees_no_mutating_buttons_and_is_refused_when_posting(
    browser: Browser, page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "owner@example.com", name="Owner")
    project_id = create_project_in_browser(page, "Shared")
    owner = console_server.api_token("owner@example.com")
    instance = _running_instance(console_server, owner, project_id)

    viewer_context = browser.new_context(base_url=console_server.url)
    try:
        viewer = viewer_context.new_page()
        sign_up_in_browser(viewer, "viewer@example.com", name="Viewer")
        with console_server.api(owner) as api:
            invitation = api.post(
                f"/v1/projects/{project_id}/invitations",
                json={"email": "viewer@example.com", "role": "viewer"},
            ).json()
        with console_server.api(console_server.api_token("viewer@example.com")) as api:
            accepted = api.post(f"/v1/invitations/{invitation['token']}/accept")
            assert accepted.status_code == 200, accepted.text

        viewer.goto(f"/projects/{project_id}/instances")
        expect(viewer.get_by_role("link", name="web-1")).to_be_visible()
        expect(viewer.get_by_role("link", name="Create instance")).to_have_count(0)
        viewer.get_by_role("link", name="web-1").click()
        expect(viewer.get_by_role("heading", level=1)).to_contain_text("running")
        expect(viewer.locator("main form[method=post]")).to_have_count(0)
        for name in ("Stop", "Reboot", "Delete", "Resize"):
            expect(viewer.get_by_role("button", name=name)).to_have_count(0)

        # Posting anyway, with a valid session and CSRF token: the API's 403.
        csrf = csrf_token_of(viewer)
        instance_url = f"/projects/{project_id}/instances/{instance['id']}"
        for action in ("stop", "delete"):
            refused = viewer_context.request.post(
                f"{instance_url}/{action}", form={"csrf_token": csrf}
            )
            assert refused.status == 403, refused.status
            assert "viewer" in refused.text()
        refused = viewer_context.request.post(
            f"/projects/{project_id}/instances/new",
            form={"csrf_token": csrf, "name": "sneaky", "size": "nano", "image": "shell"},
        )
        assert refused.status == 403
    finally:
        viewer_context.close()

    with console_server.api(owner) as api:
        items = api.get(f"/v1/projects/{project_id}/instances").json()["items"]
    assert [(i["name"], i["status"]) for i in items] == [("web-1", "running")]
    _stop(console_server, owner, project_id, instance["id"])


def test_a_cross_site_form_post_is_refused(page: Page, console_server: ConsoleServer) -> None:
    sign_up_in_browser(page, "carol@example.com", name="Carol")
    token = console_server.api_token("carol@example.com")

    # A page on another site (served by the browser itself, no network) that posts a form
    # to the console as soon as it loads.
    forged = f"""<html><body><form id="f" method="post" action="{console_server.url}/projects">
      <input name="name" value="forged"></form>
      <script>document.getElementById('f').submit()</script></body></html>"""
    page.route(
        "http://attacker.example/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=forged),
    )
    with page.expect_response(f"{console_server.url}/projects") as answer:
        page.goto("http://attacker.example/")
    assert answer.value.status in (401, 403), answer.value.status

    with console_server.api(token) as api:
        assert api.get("/v1/projects").json()["items"] == []


def test_csrf_token_and_origin_are_checked_even_with_the_cookie(
    page: Page, console_server: ConsoleServer
) -> None:
    """The second line of defence, for browsers that would send the cookie anyway."""
    sign_up_in_browser(page, "dave@example.com", name="Dave")
    token = console_server.api_token("dave@example.com")
    csrf = csrf_token_of(page)
    request = page.context.request

    missing = request.post("/projects", form={"name": "no-token"})
    wrong = request.post("/projects", form={"name": "bad-token", "csrf_token": "x" * 43})
    other_origin = request.post(
        "/projects",
        form={"name": "other-origin", "csrf_token": csrf},
        headers={"Origin": "http://attacker.example"},
    )
    assert (missing.status, wrong.status, other_origin.status) == (403, 403, 403)
    accepted = request.post("/projects", form={"name": "with-token", "csrf_token": csrf})
    assert accepted.ok

    with console_server.api(token) as api:
        names = [p["name"] for p in api.get("/v1/projects").json()["items"]]
    assert names == ["with-token"]


def test_the_session_cookie_is_http_only_and_same_site(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "erin@example.com", name="Erin")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "lariba_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    # Plain HTTP on loopback in development: Secure would make the cookie unusable here.
    assert cookie["secure"] is False
    assert page.evaluate("document.cookie") == ""

    # Pages are never cached, framed, or able to run scripts from elsewhere.
    response = page.goto("/projects")
    assert response is not None
    headers = response.headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    policy = headers["content-security-policy"]
    for directive in ("script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"):
        assert directive in policy

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/projects")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fprojects$"))
