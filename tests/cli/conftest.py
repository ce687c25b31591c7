"""The ``lariba`` command run as users run it: a subprocess with its own config file,
against a real server (tests/fixtures/console.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.console import ConsoleServer

PASSWORD = "cli-passphrase-for-tests-5"
# Keeps a local instance running until it is stopped.
RUN_FOREVER = "exec sleep 600"


@dataclass(frozen=True)
class Lariba:
    """Runs ``lariba`` with ``config`` as its config file."""

    config: Path

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lariba.cli.main", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LARIBA_CONFIG": str(self.config), **(env or {})},
            check=False,
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self(*args, input=input)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def profiles(self) -> dict[str, Any]:
        profiles: dict[str, Any] = tomllib.loads(self.config.read_text())["profiles"]
        return profiles

    def log_in(self, url: str, email: str, *, profile: str = "default") -> None:
        self.ok(
            "login",
            "--url",
            url,
            "--email",
            email,
            "--password-stdin",
            "--profile",
            profile,
            input=f"{PASSWORD}\n",
        )


def sign_up(server: ConsoleServer) -> str:
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    response = httpx.post(
        f"{server.url}/v1/auth/signup", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return email


@pytest.fixture
def lariba(tmp_path: Path) -> Lariba:
    return Lariba(config=tmp_path / "home" / "lariba" / "config.toml")


@pytest.fixture
def email(console_server: ConsoleServer) -> str:
    return sign_up(console_server)


@pytest.fixture
def logged_in(lariba: Lariba, console_server: ConsoleServer, email: str) -> Lariba:
    lariba.log_in(console_server.url, email)
    return lariba
