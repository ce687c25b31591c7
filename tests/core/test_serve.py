"""`lariba serve` as a user runs it: a real process, embedded PostgreSQL, clean stop on
SIGTERM, and everything still there after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.fixtures.serve import ADMIN_PASSWORD, free_port, postgres_running, serve, stop


def test_restart_keeps_users_projects_and_sessions(tmp_path: Path) -> None:
    data_dir = tmp_path / "lariba"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"

    with serve(data_dir, port, log) as process:
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
        assert postgres_running(data_dir / "postgres")
        assert stop(process) == 0
    assert not postgres_running(data_dir / "postgres"), "embedded PostgreSQL left running"
    first_log = log.read_text()
    assert "Lariba Cloud stopped." in first_log
    assert "Platform admin: root@lariba.test" in first_log
    assert ADMIN_PASSWORD not in first_log
    assert "dana-long-passphrase-1" not in first_log
    records = [json.loads(line) for line in first_log.splitlines() if line.startswith("{")]
    requests = [r for r in records if r["event"] == "request"]
    assert len(requests) >= 5
    assert all(len(r["request_id"]) == 32 and r["status"] < 500 for r in requests)

    with serve(data_dir, port, log) as process:
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
        assert stop(process) == 0
    assert log.read_text().count("Platform admin:") == 1
    assert not postgres_running(data_dir / "postgres")
