"""Idempotency-Key on POST: the same request again gets the same response and changes
nothing more, even sent concurrently to several replicas; another request with the key
is a 409; failed requests are not stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.idempotency import (
    RETENTION,
    IdempotencyKey,
    purge_expired_idempotency_keys,
)
from lariba.identity.models import ApiKey, Invitation, Project, User
from tests.fixtures.app import running_client
from tests.fixtures.database import make_settings
from tests.fixtures.identity import DEFAULT_PASSWORD, TestUser, bearer, create_project
from tests.fixtures.routes import operations


def keyed(key: str | bytes, user: TestUser | None = None) -> dict[str, Any]:
    return {"Idempotency-Key": key, **(user.headers if user else {})}


async def project_names(db: AsyncSession) -> list[str]:
    return list(await db.scalars(select(Project.name).order_by(Project.created_at)))


async def stored_keys(db: AsyncSession) -> list[IdempotencyKey]:
    return list(await db.scalars(select(IdempotencyKey).execution_options(populate_existing=True)))


async def test_same_key_and_body_replay_the_first_response(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    first = await client.post("/v1/projects", json={"name": "web"}, headers=keyed("k-1", alice))
    second = await client.post("/v1/projects", json={"name": "web"}, headers=keyed("k-1", alice))
    assert first.status_code == 201, first.text
    assert second.status_code == 201
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await project_names(db) == ["web"]
    [row] = await stored_keys(db)
    assert (row.scope, row.key, row.method, row.path) == (
        f"user:{alice.id}",
        "k-1",
        "POST",
        "/v1/projects",
    )
    assert row.status_code == 201
    assert row.expires_at - row.created_at == RETENTION


async def test_concurrent_requests_with_one_key_run_once(
    make_client: Callable[..., Any], alice: TestUser, db: AsyncSession
) -> None:
    """Five replicas, each with its own engine, get the same request at once."""
    async with AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(make_client()) for _ in range(5)]
        responses = await asyncio.gather(
            *(
                replica.post("/v1/projects", json={"name": "web"}, headers=keyed("k-c", alice))
                for replica in replicas
            )
        )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 4
    assert await project_names(db) == ["web"]


async def test_a_waiting_request_runs_itself_when_the_first_one_fails(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    # A first request in flight: its claim is not committed yet.
    await db.execute(
        insert(IdempotencyKey).values(
            scope=f"user:{alice.id}",
            key="k-w",
            fingerprint="0" * 64,
            method="POST",
            path="/v1/projects",
            expires_at=func.now() + RETENTION,
        )
    )
    waiting = asyncio.create_task(
        client.post("/v1/projects", json={"name": "web"}, headers=keyed("k-w", alice))
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await db.rollback()  # the first request failed
    response = await waiting
    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    assert await project_names(db) == ["web"]


async def test_same_key_with_another_body_is_409(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    first = await client.post("/v1/projects", json={"name": "web"}, headers=keyed("k-2", alice))
    assert first.status_code == 201
    other = await client.post("/v1/projects", json={"name": "api"}, headers=keyed("k-2", alice))
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_key_reused"
    assert "different request" in other.json()["detail"]
    assert await project_names(db) == ["web"]


async def test_keys_of_different_users_are_independent(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    responses = [
        await client.post("/v1/projects", json={"name": "web"}, headers=keyed("k-3", user))
        for user in (alice, bob)
    ]
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json()["id"] != responses[1].json()["id"]
    assert not any("idempotent-replayed" in r.headers for r in responses)
    assert await project_names(db) == ["web", "web"]


async def test_failed_requests_are_not_stored_and_can_be_retried(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    invalid = await client.post("/v1/projects", json={"name": ""}, headers=keyed("k-4", alice))
    assert invalid.status_code == 422
    assert await stored_keys(db) == []
    fixed = await client.post("/v1/projects", json={"name": "web"}, headers=keyed("k-4", alice))
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers

    invitation = {"email": "grace@example.com", "role": "member"}
    missing = await client.post(
        f"/v1/projects/{uuid.uuid4()}/invitations", json=invitation, headers=keyed("k-5", alice)
    )
    assert missing.status_code == 404
    project_id = fixed.json()["id"]
    retried = await client.post(
        f"/v1/projects/{project_id}/invitations", json=invitation, headers=keyed("k-5", alice)
    )
    assert retried.status_code == 201, retried.text
    assert await db.scalar(select(func.count()).select_from(Invitation)) == 1


async def test_api_key_creation_replays_the_key_stored_encrypted(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    responses = [
        await client.post("/v1/me/api-keys", json={"name": "ci"}, headers=keyed("k-6", alice))
        for _ in range(2)
    ]
    assert [r.status_code for r in responses] == [201, 201]
    key = responses[0].json()["key"]
    assert responses[1].json()["key"] == key
    assert [r.headers["cache-control"] for r in responses] == ["no-store", "no-store"]
    assert await db.scalar(select(func.count()).select_from(ApiKey)) == 1
    [row] = await stored_keys(db)
    assert row.response_body_encrypted is not None
    assert key not in row.response_body_encrypted
    assert key[4:] not in row.response_body_encrypted


async def test_no_replay_to_a_revoked_api_key(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    created = (
        await client.post("/v1/me/api-keys", json={"name": "ci"}, headers=alice.headers)
    ).json()
    headers = {**bearer(created["key"]), "Idempotency-Key": "k-7"}
    first = await client.post("/v1/projects", json={"name": "web"}, headers=headers)
    assert first.status_code == 201, first.text
    revoked = await client.delete(f"/v1/me/api-keys/{created['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    again = await client.post("/v1/projects", json={"name": "web"}, headers=headers)
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_api_key"
    assert await project_names(db) == ["web"]


@pytest.mark.parametrize("key", [b"", b"k" * 256, "clé".encode(), b"two words"])
async def test_invalid_key_is_422_naming_the_header(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, key: bytes
) -> None:
    response = await client.post("/v1/projects", json={"name": "web"}, headers=keyed(key, alice))
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_idempotency_key"
    assert body["errors"] == [
        {
            "field": "Idempotency-Key",
            "message": "must be 1 to 255 visible ASCII characters",
            "location": "header",
        }
    ]
    assert body["request_id"] == response.headers["x-request-id"]
    assert await project_names(db) == []


async def test_longest_key_is_accepted(client: httpx.AsyncClient, alice: TestUser) -> None:
    key = "k" * 255
    response = await client.post("/v1/projects", json={"name": "web"}, headers=keyed(key, alice))
    assert response.status_code == 201, response.text


async def test_every_post_route_reads_the_key(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser
) -> None:
    """The header is handled before routing, so a new POST route has it too."""
    posts = [op for op in operations(app) if op.method == "POST"]
    assert len(posts) >= 10
    for op in posts:
        response = await client.post(op.url(), headers=keyed(b"", alice), json={})
        assert response.status_code == 422, op
        assert response.json()["code"] == "invalid_idempotency_key", op


async def test_anonymous_sign_up_replays(client: httpx.AsyncClient, db: AsyncSession) -> None:
    body = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    first = await client.post("/v1/auth/signup", json=body, headers=keyed("k-8"))
    second = await client.post("/v1/auth/signup", json=body, headers=keyed("k-8"))
    assert (first.status_code, second.status_code) == (201, 201), first.text
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await db.scalar(select(func.count()).select_from(User)) == 1
    [row] = await stored_keys(db)
    assert row.scope == "anonymous"


async def test_invalid_bearer_token_is_anonymous_and_refused(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    """A token whose signature does not verify does not make its subject the key's owner."""
    forged = alice.access_token[:-4] + ("AAAA" if alice.access_token[-4:] != "AAAA" else "BBBB")
    headers = {**bearer(forged), "Idempotency-Key": "k-9"}
    response = await client.post("/v1/projects", json={"name": "web"}, headers=headers)
    assert response.status_code == 401
    assert await stored_keys(db) == []


async def test_expired_key_can_be_used_again(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    first = await client.post("/v1/projects", json={"name": "web"}, headers=keyed("k-10", alice))
    assert first.status_code == 201
    await db.execute(update(IdempotencyKey).values(expires_at=func.now() - timedelta(minutes=1)))
    await db.commit()
    other = await client.post("/v1/projects", json={"name": "api"}, headers=keyed("k-10", alice))
    assert other.status_code == 201, other.text
    assert "idempotent-replayed" not in other.headers
    assert await project_names(db) == ["web", "api"]
    [row] = await stored_keys(db)
    assert row.expires_at > row.created_at


async def test_purge_deletes_only_expired_keys(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    for key, name in [("old", "web"), ("new", "api")]:
        response = await client.post("/v1/projects", json={"name": name}, headers=keyed(key, alice))
        assert response.status_code == 201
    await db.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == "old")
        .values(expires_at=func.now() - timedelta(seconds=1))
    )
    assert await purge_expired_idempotency_keys(db) == 1
    await db.commit()
    assert [row.key for row in await stored_keys(db)] == ["new"]


async def test_keys_are_ignored_on_other_methods(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    response = await client.patch(
        f"/v1/projects/{project['id']}", json={"name": "renamed"}, headers=keyed(b"", alice)
    )
    assert response.status_code == 200, response.text
    assert await stored_keys(db) == []


async def test_database_down_is_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    url = f"postgresql://postgres@/lariba?host={tmp_path}"
    async with running_client(settings, url) as client:
        response = await client.post(
            "/v1/auth/signup",
            json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
            headers=keyed("k-11"),
        )
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["retry-after"]) > 0
