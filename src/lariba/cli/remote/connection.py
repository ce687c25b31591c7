"""What every user command shares: the profile it runs as, a client holding that profile's
credentials (whose refreshed tokens are saved back), and one place that turns a failure
into a one-line message and a documented exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from lariba.cli.remote.config import (
    DEFAULT_PROFILE,
    ConfigError,
    Profile,
    config_path,
    load_profiles,
    save_profiles,
)
from lariba.client import (
    Client,
    ConnectionFailed,
    InvalidInput,
    LaribaError,
    NotFound,
    OperationFailed,
    OperationTimeout,
    RateLimited,
    ServerError,
    Unauthorized,
)

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_OPERATION = 5
EXIT_INTERRUPTED = 130

ProfileOption = Annotated[
    str,
    typer.Option(
        "--profile", envvar="LARIBA_PROFILE", help="The config profile (server account) to use."
    ),
]
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        envvar="LARIBA_PROJECT",
        help="Project id. Default: the profile's project (`lariba projects use`).",
    ),
]


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """``--label key=value`` options as a mapping."""
    labels = {}
    for text in items or ():
        key, equals, value = text.partition("=")
        if not equals or not key:
            fail(f"--label {text}: expected key=value, e.g. env=prod", EXIT_USAGE)
        labels[key] = value
    return labels


def not_found_in_project(kind: str, ref: str, project_id: str) -> str:
    """The message for a project's resource that does not exist: with the command that
    lists what does."""
    return (
        f"{kind} {ref} not found in project {project_id}: "
        f"see `lariba {kind}s list --project {project_id}`"
    )


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"lariba: {message}", err=True)
    raise typer.Exit(code)


def login_hint(profile_name: str, url: str | None) -> str:
    command = "lariba login"
    if url:
        command += f" --url {url}"
    if profile_name != DEFAULT_PROFILE:
        command += f" --profile {profile_name}"
    return f"`{command}`"


@dataclass
class Connection:
    """The profile a command runs as and, once logged in, its client."""

    profile_name: str
    path: Path
    profile: Profile | None

    @classmethod
    def open(cls, profile_name: str) -> Connection:
        path = config_path()
        try:
            profiles = load_profiles(path)
        except ConfigError as exc:
            fail(f"{exc}: fix or delete the file, then run `lariba login`", EXIT_USAGE)
        return cls(profile_name=profile_name, path=path, profile=profiles.get(profile_name))

    @property
    def url(self) -> str | None:
        return self.profile.url if self.profile else None

    def save(self, profile: Profile | None) -> None:
        """Writes this profile (None: removes it), keeping every other one as it is now."""
        try:
            profiles = load_profiles(self.path)
        except ConfigError:
            profiles = {}
        if profile is None:
            profiles.pop(self.profile_name, None)
        else:
            profiles[self.profile_name] = profile
        save_profiles(self.path, profiles)
        self.profile = profile

    def project_id(self, explicit: str | None) -> str:
        project = explicit or (self.profile.project if self.profile else None)
        if not project:
            fail(
                "no project chosen: pass --project ID, or set a default with "
                "`lariba projects use ID` (ids: `lariba projects list`)",
                EXIT_USAGE,
            )
        return project

    @contextmanager
    def client(self, *, not_found: str | None = None) -> Iterator[Client]:
        """A client logged in as the profile. Failures inside end the command with their
        message and exit code; tokens the client refreshed are saved even then."""
        profile = self.profile
        if profile is None or not profile.logged_in:
            fail(
                f"not logged in (profile {self.profile_name}): run "
                f"{login_hint(self.profile_name, self.url)}",
                EXIT_AUTH,
            )
        if profile.api_key is not None:
            client = Client(profile.url, token=profile.api_key)
        else:
            client = Client(
                profile.url, token=profile.access_token, refresh_token=profile.refresh_token
            )
        try:
            with self.failures(not_found=not_found):
                yield client
        finally:
            self._keep_tokens(client)
            client.close()

    @contextmanager
    def failures(self, *, not_found: str | None = None) -> Iterator[None]:
        try:
            yield
        except LaribaError as error:
            message, code = self.explain(error, not_found=not_found)
            fail(message, code)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)

    def explain(self, error: LaribaError, *, not_found: str | None) -> tuple[str, int]:
        url = self.url or "the server"
        if isinstance(error, ConnectionFailed):
            reason = error.detail.removeprefix(f"Could not reach Lariba Cloud at {error.url}: ")
            return (
                f"cannot reach {error.url}: is the server running, and is that its address? "
                f"({reason})",
                EXIT_UNREACHABLE,
            )
        if isinstance(error, Unauthorized):
            return (
                f"not logged in to {url} any more ({error.detail.rstrip('.')}, "
                f"{error.code}): run {login_hint(self.profile_name, self.url)}",
                EXIT_AUTH,
            )
        if isinstance(error, OperationFailed):
            operation = error.operation
            return (
                f"operation {operation.id} ({operation.type}) failed: {error.detail} "
                f"({error.code})",
                EXIT_OPERATION,
            )
        if isinstance(error, OperationTimeout):
            return (
                f"{error.detail} It goes on in the background: follow it with "
                f"`lariba operations wait {error.operation.id}`",
                EXIT_OPERATION,
            )
        path_invalid = isinstance(error, InvalidInput) and any(
            e.location == "path" for e in error.errors
        )
        if isinstance(error, NotFound) or path_invalid:
            if error.code == "project_not_found" or (
                path_invalid and any(e.field == "project_id" for e in error.errors)
            ):
                return (
                    "project not found (or you are not a member): see `lariba projects list`",
                    EXIT_API_ERROR,
                )
            return (not_found or f"{error.detail} ({error.code})", EXIT_API_ERROR)
        if isinstance(error, InvalidInput) and error.errors:
            fields = "; ".join(f"{e.field}: {e.message}" for e in error.errors)
            return (f"{error.detail} ({fields}): correct it and try again", EXIT_API_ERROR)
        if isinstance(error, RateLimited):
            wait = f" in {error.retry_after} seconds" if error.retry_after else " later"
            return (f"{error.detail} ({error.code}): try again{wait}", EXIT_API_ERROR)
        if isinstance(error, ServerError):
            return (
                f"the server failed: {error.detail} ({error.code}); if it goes on, report "
                f"request id {error.request_id} to your Lariba administrator",
                EXIT_API_ERROR,
            )
        return (f"{error.detail} ({error.code})", EXIT_API_ERROR)

    def _keep_tokens(self, client: Client) -> None:
        profile = self.profile
        tokens = client.tokens
        if profile is None or profile.api_key is not None or tokens is None:
            return
        if (tokens.access_token, tokens.refresh_token) != (
            profile.access_token,
            profile.refresh_token,
        ):
            self.save(
                replace(
                    profile, access_token=tokens.access_token, refresh_token=tokens.refresh_token
                )
            )
