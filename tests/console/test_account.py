"""The account page in a real browser: profile, password, API keys shown once and
revoked, and two-factor enrolment followed by a sign-in with a code."""

from __future__ import annotations

import re
import time

import httpx
import pyotp
from playwright.sync_api import Page, expect

from tests.fixtures.console import PASSWORD, ConsoleServer, screenshot, sign_up_in_browser


def _token(server: ConsoleServer, email: str, password: str = PASSWORD) -> str:
    response = httpx.post(
        f"{server.url}/v1/auth/token", data={"username": email, "password": password}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _me(server: ConsoleServer, credential: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/me", headers={"Authorization": f"Bearer {credential}"})


def test_profile_password_and_an_api_key_shown_once_then_revoked(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "ada@example.com")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Ada").click()
    expect(page).to_have_url(re.compile(r"/account$"))

    page.get_by_label("Display name").fill("Ada Lovelace")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status").first).to_contain_text("Your profile was saved")
    expect(page.get_by_role("navigation", name="Account")).to_contain_text("Ada Lovelace")
    token = _token(console_server, "ada@example.com")
    assert _me(console_server, token).json()["display_name"] == "Ada Lovelace"

    page.get_by_label("Current password").fill("not-my-password-at-all")
    page.get_by_label(re.compile(r"^New password")).fill("a-brand-new-passphrase-42")
    page.get_by_label("Repeat new password").fill("a-brand-new-passphrase-42")
    page.get_by_role("button", name="Change password").click()
    current = page.get_by_label("Current password")
    expect(current).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#current_password-error")).to_have_text("is incorrect")
    # Nothing changed: the old password still logs in.
    assert _token(console_server, "ada@example.com")

    page.get_by_label("Key name").fill("ci-deploy")
    page.get_by_label("Role limit").select_option("viewer")
    page.get_by_role("button", name="Create API key").click()
    secret = page.locator("#new-api-key")
    expect(secret).to_have_text(re.compile(r"^lrb_\w+$"))
    key = secret.inner_text().strip()
    expect(page.get_by_role("button", name="Copy key")).to_have_attribute(
        "data-copy-from", "new-api-key"
    )
    row = page.get_by_role("row", name=re.compile("ci-deploy"))
    expect(row).to_contain_text("viewer")
    expect(row).to_contain_text("never")
    response = _me(console_server, key)
    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"

    # Shown once: the page, loaded again, has only the key's first characters.
    page.goto("/account")
    assert key not in page.content()
    row = page.get_by_role("row", name=re.compile("ci-deploy"))
    expect(row).to_contain_text(key[:8])
    page.evaluate("document.getElementById('two-factor').scrollIntoView()")
    screenshot(page, "account")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status").first).to_contain_text("revoked")
    expect(page.get_by_role("row", name=re.compile("ci-deploy"))).to_contain_text("revoked")
    assert _me(console_server, key).status_code == 401

    # A password change ends every session, the console's too: sign in again.
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label(re.compile(r"^New password")).fill("a-brand-new-passphrase-42")
    page.get_by_label("Repeat new password").fill("a-brand-new-passphrase-42")
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/account/password-changed$"))
    expect(page.get_by_role("status")).to_contain_text("every session")
    assert _me(console_server, token).status_code == 401
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("E-mail").fill("ada@example.com")
    page.get_by_label("Password").fill("a-brand-new-passphrase-42")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/account$"))


def test_two_factor_enrolment_then_sign_in_with_a_code(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_up_in_browser(page, "grace@example.com", name="Grace")
    page.goto("/account")
    page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Set up two-factor").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-factor authentication")
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    screenshot(page, "mfa-enrolment")

    # A wrong code keeps the same secret on screen, with the API's error at the field.
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from your app").fill(str((int(totp.now()) + 1) % 1_000_000).zfill(6))
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.locator("#code-error")).to_be_visible()
    expect(page.locator("#totp-secret")).to_have_text(secret)

    page.get_by_label("Code from your app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
    codes = page.locator("#recovery-codes").inner_text().split()
    assert len(codes) == 10
    page.get_by_role("link", name="I have stored them").click()
    expect(page.locator("#two-factor")).to_contain_text("Signing in needs a code")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("E-mail").fill("grace@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    code_field = page.get_by_label("Two-factor code")
    expect(code_field).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    # The confirming code is spent; the next 30-second step's code is accepted.
    code_field.fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/projects$"))
    expect(page.get_by_role("navigation", name="Account")).to_contain_text("Grace")

    # A recovery code stands in for the app: new codes, then two-factor turned off.
    page.goto("/account")
    page.get_by_label("Two-factor or recovery code").fill(codes[0])
    page.get_by_role("button", name="Get new recovery codes").click()
    expect(page.get_by_role("status")).to_contain_text("old ones no longer work")
    new_codes = page.locator("#recovery-codes").inner_text().split()
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    page.goto("/account")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    page.get_by_label("Code or recovery code").fill(new_codes[0])
    page.get_by_role("button", name="Turn off two-factor").click()
    expect(page.get_by_role("status").first).to_contain_text("Two-factor authentication is off")
    token = httpx.post(
        f"{console_server.url}/v1/auth/token",
        data={"username": "grace@example.com", "password": PASSWORD},
    )
    assert token.status_code == 200
