"""Logs carry the request id and never a secret."""

from __future__ import annotations

import httpx
import structlog

from lariba.core.logging import redact_path
from tests.fixtures.identity import TestUser


def test_invitation_tokens_are_masked_in_paths() -> None:
    assert redact_path("/v1/invitations/s3cr3t-token/accept") == (
        "/v1/invitations/[redacted]/accept"
    )
    assert redact_path("/v1/projects/abc") == "/v1/projects/abc"


async def test_request_log_has_request_id_and_no_invitation_token(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    token = "not-a-real-invitation-token-1234567890"
    with structlog.testing.capture_logs() as logs:
        response = await client.post(
            f"/v1/invitations/{token}/accept",
            headers={**alice.headers, "X-Request-ID": "req-logging-test-1"},
        )
    assert response.status_code == 404
    assert token not in response.text
    assert response.json()["instance"] == "/v1/invitations/[redacted]/accept"
    requests = [entry for entry in logs if entry["event"] == "request"]
    assert requests == [
        {
            "event": "request",
            "log_level": "info",
            "method": "POST",
            "path": "/v1/invitations/[redacted]/accept",
            "status": 404,
            "duration_ms": requests[0]["duration_ms"],
        }
    ]
    assert token not in repr(logs)
