"""``lariba login``, ``logout`` and ``whoami``: the account a profile acts as."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import replace
from typing import Annotated

import typer

from lariba.cli.remote.config import Profile
from lariba.cli.remote.connection import (
    EXIT_USAGE,
    Connection,
    ProfileOption,
    fail,
)
from lariba.cli.remote.output import Format, OutputOption, emit_record
from lariba.client import Client, Tokens, Unauthorized, User

LOGIN_HELP = (
    "Log in to a Lariba Cloud server and keep the session in the config file.\n\n"
    "With a password (asked for with hidden input, then a two-factor code if your account "
    "has one), or with an API key (--api-key: from LARIBA_API_KEY, or asked for). The "
    "password is never stored.\n\n"
    "Examples:\n\n"
    "  lariba login --url https://cloud.example.com --email ada@example.com\n\n"
    '  echo "$PASSWORD" | lariba login --url https://cloud.example.com '
    "--email ada@example.com --password-stdin\n\n"
    "  LARIBA_API_KEY=lrb_... lariba login --url https://cloud.example.com --api-key "
    "--profile ci"
)


def login(
    profile_name: ProfileOption = "default",
    url: Annotated[
        str | None,
        typer.Option(help="The server's address. Default: the profile's, or LARIBA_URL."),
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="Your e-mail address (asked if not given).")
    ] = None,
    api_key: Annotated[
        bool, typer.Option("--api-key", help="Log in with an API key instead of a password.")
    ] = False,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of stdin (and a two-factor code "
            "from the next), for scripts.",
        ),
    ] = False,
) -> None:
    connection = Connection.open(profile_name)
    address = (url or connection.url or os.environ.get("LARIBA_URL") or "").rstrip("/")
    if not address:
        fail("which server? pass --url (e.g. --url https://cloud.example.com)", EXIT_USAGE)
    with connection.failures():
        if api_key:
            key = os.environ.get("LARIBA_API_KEY") or typer.prompt("API key", hide_input=True)
            with Client(address, token=key) as client:
                user = client.me()
            profile = Profile(url=address, email=user.email, api_key=key)
        else:
            login_email = email or (connection.profile.email if connection.profile else None)
            login_email = login_email or typer.prompt("E-mail")
            password = _read_secret("Password", from_stdin=password_stdin)
            tokens, user = _log_in(
                address, email=login_email, password=password, password_stdin=password_stdin
            )
            profile = Profile(
                url=address,
                email=user.email,
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
            )
    previous = connection.profile
    if previous is not None and previous.url == address:
        profile = replace(profile, project=previous.project)
    connection.save(profile)
    typer.echo(
        f"Logged in to {address} as {user.email} (profile {profile_name}, "
        f"config {connection.path})."
    )


def _read_secret(prompt: str, *, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail(f"--password-stdin: stdin has no {prompt.lower()} line", EXIT_USAGE)
        return line
    secret: str = typer.prompt(prompt, hide_input=True)
    return secret


def _log_in(url: str, *, email: str, password: str, password_stdin: bool) -> tuple[Tokens, User]:
    try:
        with Client(url, email=email, password=password) as client:
            return client.log_in(), client.me()
    except Unauthorized as error:
        if error.code != "mfa_required":
            raise
    code = _read_secret("Two-factor code (or a recovery code)", from_stdin=password_stdin)
    with Client(url, email=email, password=password, otp=code) as client:
        return client.log_in(), client.me()


def logout(profile_name: ProfileOption = "default") -> None:
    """End the session on the server and remove its tokens from the config file.

    The profile keeps its server address, e-mail and default project, so the next
    `lariba login` needs only the password.

    Example:

      lariba logout --profile staging
    """
    connection = Connection.open(profile_name)
    profile = connection.profile
    if profile is None or not profile.logged_in:
        typer.echo(f"Not logged in (profile {profile_name}); nothing to do.")
        return
    if profile.access_token is not None:
        client = Client(
            profile.url, token=profile.access_token, refresh_token=profile.refresh_token
        )
        # An expired access token is refreshed first; a session already ended is fine.
        with connection.failures(), client, contextlib.suppress(Unauthorized):
            client.log_out()
    connection.save(profile.logged_out())
    typer.echo(f"Logged out of {profile.url} (profile {profile_name}).")


def whoami(profile_name: ProfileOption = "default", output: OutputOption = Format.table) -> None:
    """Show the account the profile is logged in as.

    Examples:

      lariba whoami

      lariba whoami --profile staging --output json
    """
    connection = Connection.open(profile_name)
    with connection.client() as client:
        user = client.me()
    if output is Format.table:
        assert connection.profile is not None
        project = connection.profile.project or "(none: `lariba projects use ID`)"
        typer.echo(f"{user.email} on {connection.profile.url} (profile {profile_name})")
        typer.echo(f"default project: {project}")
        if connection.profile.api_key is not None:
            typer.echo("signed in with an API key")
        return
    emit_record(user, output)


def register(app: typer.Typer) -> None:
    app.command("login", help=LOGIN_HELP)(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
