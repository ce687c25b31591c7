"""Responses that carry a secret are never cached."""

from __future__ import annotations

import httpx

from tests.fixtures.identity import TestUser, create_project, log_in


async def test_responses_with_secrets_forbid_caching(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    project = await create_project(client, alice)
    responses = {
        "token": await log_in(client, alice.email, alice.password),
        "refresh": await client.post(
            "/v1/auth/refresh", json={"refresh_token": alice.refresh_token}
        ),
        "api key": await client.post("/v1/me/api-keys", json={"name": "ci"}, headers=alice.headers),
        "invitation": await client.post(
            f"/v1/projects/{project['id']}/invitations",
            json={"email": "grace@example.com"},
            headers=alice.headers,
        ),
        "mfa enrolment": await client.post(
            "/v1/me/mfa", json={"password": alice.password}, headers=alice.headers
        ),
    }
    for name, response in responses.items():
        assert response.status_code in (200, 201), (name, response.text)
        assert response.headers["cache-control"] == "no-store", name
    listing = await client.get("/v1/projects", headers=alice.headers)
    assert "cache-control" not in listing.headers
