"""`lariba serve` as a user runs it: a real process, embedded PostgreSQL, clean stop on
SIGTERM, and everything still there after a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ADMIN_PASSWORD = "admin-passphrase-for-tests-9"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _serve(data_dir: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "LARIBA_DATA_DIR": str(data_dir),
        "LARIBA_PORT": str(port),
        "LARIBA_ADMIN_EMAIL": "root@lariba.test",
        "LARIBA_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    env.pop("LARIBA_DATABASE_URL", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lariba.cli.main", "serve"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"lariba serve exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"lariba serve did not become ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def _postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_restart_keeps_users_projects_and_sessions(tmp_path: Path) -> None:
    data_dir = tmp_path / "lariba"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"

    with _serve(data_dir, port, log) as process:
        with httpx.Client(base_url=base) as http:
            signup = http.post(
                "/v1/auth/signup",
                json={"email": "dana@example.com", "password": "dana-long-passphrase-1"},
            )
            assert signup.status_code == 201, signup.text
            tokens = http.post(
                "/v1/auth/token",
                data={"username": "dana@example.com", "password": "dana-long-passphrase-1"},
            ).json()
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            project = http.post("/v1/projects", json={"name": "keep-me"}, headers=headers)
            assert project.status_code == 201, project.text
            admin = http.post(
                "/v1/auth/token",
                data={"username": "root@lariba.test", "password": ADMIN_PASSWORD},
            )
            assert admin.status_code == 200
        assert _postgres_running(data_dir / "postgres")
        assert _stop(process) == 0
    assert not _postgres_running(data_dir / "postgres"), "embedded PostgreSQL left running"
    first_log = log.read_text()
    assert "Lariba Cloud stopped." in first_log
    assert "Platform admin: root@lariba.test" in first_log
    assert ADMIN_PASSWORD not in first_log

    with _serve(data_dir, port, log) as process:
        with httpx.Client(base_url=base) as http:
            # The session survives: the refresh token from before the restart still works.
            refreshed = http.post(
                "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            assert refreshed.status_code == 200, refreshed.text
            headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
            projects = http.get("/v1/projects", headers=headers).json()
            assert [p["name"] for p in projects["items"]] == ["keep-me"]
            assert http.get("/v1/me", headers=headers).json()["email"] == "dana@example.com"
        assert _stop(process) == 0
    assert log.read_text().count("Platform admin:") == 1
    assert not _postgres_running(data_dir / "postgres")
