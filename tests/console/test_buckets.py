"""Buckets in the console, in a real browser: the create form (and its errors), uploads
straight to presigned URLs (in parts for a large file), folders, downloads, links, and
deleting objects and buckets."""

from __future__ import annotations

import os
import re

import httpx
from playwright.sync_api import Browser, FilePayload, Page, expect

from tests.fixtures.console import (
    ConsoleServer,
    create_project_in_browser,
    screenshot,
    sign_up_in_browser,
)

MIB = 1024 * 1024


def create_bucket_in_browser(page: Page, name: str, *, versioning: bool = False) -> str:
    """Creates the bucket from the list page's form and waits until it is available;
    returns its id."""
    page.get_by_role("link", name="Buckets").click()
    page.get_by_label("Name").fill(name)
    if versioning:
        page.get_by_label("Keep every version").check()
    page.get_by_label("Labels").fill("env=test")
    page.get_by_role("button", name="Create bucket").click()
    expect(page).to_have_url(re.compile(r"/buckets/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("available", timeout=20_000)
    # The object browser appears once the bucket is usable (the page loads itself again).
    expect(page.get_by_label("Choose files to upload")).to_be_visible()
    expect(page.get_by_text("Uploading files needs JavaScript")).to_be_hidden()
    return page.url.rsplit("/", 1)[1]


def put_object(api: httpx.Client, project_id: str, bucket_id: str, key: str, data: bytes) -> None:
    signed = api.post(
        f"/v1/projects/{project_id}/buckets/{bucket_id}/objects/presign",
        json={"key": key, "method": "PUT", "content_length": len(data)},
    )
    assert signed.status_code == 200, signed.text
    assert httpx.put(signed.json()["url"], content=data).status_code == 200


def test_create_bucket_upload_browse_download_and_delete_objects(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    project_id = create_project_in_browser(page, "Analytical Engine")
    api = console_server.api(console_server.api_token("ada@example.com"))

    page.get_by_role("link", name="Buckets").click()
    page.get_by_label("Name").fill("Bad_Name")
    page.get_by_role("button", name="Create bucket").click()
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_value("Bad_Name")
    expect(page.locator("#name-error")).to_contain_text("lowercase letters")

    bucket_id = create_bucket_in_browser(page, "engine-notes", versioning=True)
    bucket = api.get(f"/v1/projects/{project_id}/buckets/{bucket_id}").json()
    assert (bucket["versioning"], bucket["labels"]) == (True, {"env": "test"})

    put_object(api, project_id, bucket_id, "reports/2026/summary.csv", b"month,cost\n11,3\n")
    put_object(api, project_id, bucket_id, "reports/readme.md", b"# Reports\n")
    put_object(api, project_id, bucket_id, "diagram.svg", b"<svg/>" * 300)
    notes = b"Notes on the Analytical Engine.\n" * 40
    page.get_by_label("Choose files to upload").set_input_files(
        files=[FilePayload(name="notes.txt", mimeType="text/plain", buffer=notes)]
    )
    expect(page.get_by_role("status").filter(has_text="1 uploaded.")).to_be_visible()
    # The list was refreshed in place: the new object and those already there.
    row = page.get_by_role("row", name=re.compile("notes.txt"))
    expect(row).to_contain_text("1.2 KiB")
    expect(row).to_contain_text("text/plain")
    expect(page.get_by_role("link", name="reports/")).to_be_visible()
    page.evaluate("document.getElementById('objects-section').scrollIntoView()")
    screenshot(page, "bucket-objects")

    with page.expect_download() as download:
        row.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "notes.txt"
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == notes

    row.get_by_role("button", name="Copy link").click()
    link = page.locator("#link-status input")
    expect(link).to_have_value(re.compile(r"/v1/storage/"))
    assert httpx.get(link.input_value()).content == notes

    page.get_by_role("link", name="reports/").click()
    expect(page.get_by_role("navigation", name="Folder path")).to_contain_text("reports")
    expect(page.get_by_role("row", name=re.compile("readme.md"))).to_contain_text("10 B")
    page.get_by_role("link", name="2026/").click()
    expect(page.get_by_role("row", name=re.compile("summary.csv"))).to_be_visible()
    page.get_by_role("navigation", name="Folder path").get_by_role("link", name="reports").click()
    expect(page).to_have_url(re.compile(r"prefix=reports(/|%2F)$"))
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete readme.md").click()
    expect(page.get_by_role("row", name=re.compile("readme.md"))).to_have_count(0)
    expect(page).to_have_url(re.compile(r"prefix=reports(/|%2F)$"))
    gone = api.get(
        f"/v1/projects/{project_id}/buckets/{bucket_id}/objects/metadata",
        params={"key": "reports/readme.md"},
    )
    assert gone.status_code == 404

    page.get_by_role("link", name="Buckets").first.click()
    expect(page.get_by_role("row", name=re.compile("engine-notes"))).to_contain_text("available")
    screenshot(page, "buckets")


def test_large_file_goes_up_in_parts_aborted_on_failure_then_bucket_settings(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "grace@example.com", name="Grace")
    project_id = create_project_in_browser(page, "Compiler")
    api = console_server.api(console_server.api_token("grace@example.com"))
    bucket_id = create_bucket_in_browser(page, "tapes")

    page.locator("[data-upload]").evaluate(f"el => el.dataset.partSize = '{MIB}'")
    data = os.urandom(5 * MIB // 2)

    # A part that cannot be sent: the upload is aborted, leaving nothing behind.
    page.route(re.compile(r"/v1/storage/.*part_number=2"), lambda route: route.abort())
    with page.expect_response(
        lambda r: r.request.method == "DELETE" and "/uploads/" in r.url
    ) as aborted:
        page.get_by_label("Choose files to upload").set_input_files(
            files=[FilePayload(name="tape.bin", mimeType="application/octet-stream", buffer=data)]
        )
    assert aborted.value.status == 204
    expect(page.get_by_text("Failed: The connection to the storage failed.")).to_be_visible()
    upload_id = aborted.value.url.rsplit("/", 1)[1]
    again = api.post(
        f"/v1/projects/{project_id}/buckets/{bucket_id}/objects/uploads/{upload_id}/complete",
        json={"parts": [{"part_number": 1, "etag": "x"}]},
    )
    assert again.json()["code"] == "upload_not_found"
    page.unroute_all()

    page.get_by_label("Choose files to upload").set_input_files(
        files=[FilePayload(name="tape.bin", mimeType="application/octet-stream", buffer=data)]
    )
    expect(page.get_by_text("Uploaded, 2.5 MiB")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("tape.bin"))).to_contain_text("2.5 MiB")
    stored = api.get(
        f"/v1/projects/{project_id}/buckets/{bucket_id}/objects/metadata",
        params={"key": "tape.bin"},
    ).json()
    assert stored["size"] == len(data)
    assert stored["etag"].endswith("-3")  # three parts: 1 MiB, 1 MiB, 0.5 MiB

    presign = f"/projects/{project_id}/buckets/{bucket_id}/presign"
    status, problem = page.evaluate(
        """async (url) => {
          const response = await fetch(url, {
            method: "POST",
            headers: {
              "Content-Type": "application/json",
              "X-CSRF-Token": window.lariba.csrfToken(),
            },
            body: JSON.stringify({key: "a/../b", method: "PUT", content_length: 1}),
          });
          return [response.status, await response.json()];
        }""",
        presign,
    )
    assert (status, problem["errors"][0]["field"]) == (422, "key")
    without_csrf = page.evaluate(
        "async (url) => (await fetch(url, {method: 'POST', body: '{}'})).status", presign
    )
    assert without_csrf == 403

    page.get_by_role("button", name="Turn versioning on").click()
    expect(page.get_by_text("Versioning is on")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("available", timeout=20_000)
    assert api.get(f"/v1/projects/{project_id}/buckets/{bucket_id}").json()["versioning"]

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete bucket").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("holds 1 objects.*Tick"))
    page.get_by_label("Also delete every object in it").check()
    page.get_by_role("button", name="Delete bucket").click()
    expect(page).to_have_url(re.compile(rf"/projects/{project_id}/buckets$"))
    status = api.get(f"/v1/projects/{project_id}/buckets/{bucket_id}").json()["status"]
    assert status in ("deleting", "deleted")


def test_without_javascript_everything_but_uploading_works(
    browser: Browser, console_server: ConsoleServer
) -> None:
    context = browser.new_context(base_url=console_server.url, java_script_enabled=False)
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_up_in_browser(page, "kathleen@example.com", name="Kathleen")
    project_id = create_project_in_browser(page, "Booth Machine")
    api = console_server.api(console_server.api_token("kathleen@example.com"))
    page.get_by_role("link", name="Buckets").click()
    page.get_by_label("Name").fill("plain-forms")
    page.get_by_role("button", name="Create bucket").click()
    bucket_id = page.url.rsplit("/", 1)[1]
    heading = page.get_by_role("heading", level=1)
    for _ in range(40):  # no live updates without JavaScript: reload until available
        if "available" in heading.inner_text():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(page.get_by_text("Uploading files needs JavaScript")).to_be_visible()
    expect(page.get_by_label("Choose files to upload")).to_be_hidden()

    put_object(api, project_id, bucket_id, "plain.txt", b"no scripts here\n")
    page.reload()
    page.get_by_role("button", name="Copy link to plain.txt").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Link to plain.txt")
    assert httpx.get(page.get_by_label("Link").input_value()).content == b"no scripts here\n"
    page.get_by_role("link", name="Back to plain-forms").click()
    page.get_by_role("button", name="Delete plain.txt").click()
    expect(page.get_by_text("No objects yet.")).to_be_visible()
    context.close()
