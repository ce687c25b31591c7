"""The HTTP contract every endpoint keeps: request ids, problem+json, 422 naming the field,
413 for oversized bodies, and never a 500 for bad input."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.app import create_app, warm_up
from lariba.core.query import list_query_parameters
from lariba.core.settings import Settings
from lariba.identity.models import Project, User
from tests.fixtures.identity import TestUser
from tests.fixtures.routes import operations


async def test_request_id_is_returned_and_kept_when_sane(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    kept = await client.get("/healthz", headers={"X-Request-ID": "trace-abc-123456"})
    assert kept.headers["x-request-id"] == "trace-abc-123456"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert replaced.headers["x-request-id"] != "bad id\twith junk"


async def test_problem_carries_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nowhere", headers={"X-Request-ID": "req-0123456789"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found"
    assert body["request_id"] == "req-0123456789"
    assert body["type"] == "urn:lariba:problem:not_found"


async def test_every_json_endpoint_names_missing_fields(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    # A platform admin, so admin routes reach their body too.
    await db.execute(update(User).where(User.id == alice.id).values(is_platform_admin=True))
    await db.commit()
    checked = 0
    for op in operations(app):
        if not op.has_json_body:
            continue
        # A JSON array where an object is expected.
        response = await client.request(
            op.method,
            op.url(),
            headers={**alice.headers, "content-type": "application/json"},
            content=b"[1, 2]",
        )
        if response.status_code == 404:
            continue  # the random resource id is refused before the body is read
        assert response.status_code == 422, (op, response.text)
        body = response.json()
        assert body["code"] == "validation_failed"
        assert body["errors"] and all("field" in e for e in body["errors"])
        checked += 1
    assert checked >= 3


async def test_invalid_json_is_422_naming_the_body(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    response = await client.post(
        "/v1/auth/signup", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


async def test_unknown_fields_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/signup",
        json={
            "email": "e@example.com",
            "password": "long-enough-pass-1",
            "is_platform_admin": True,
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "is_platform_admin"


async def test_oversized_body_is_413(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser
) -> None:
    big = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    for op in operations(app):
        if op.body_content_type is None:
            continue
        response = await client.request(
            op.method,
            op.url(),
            headers={**alice.headers, "content-type": op.body_content_type},
            content=big,
        )
        assert response.status_code == 413, (op, response.status_code)
        assert response.json()["code"] == "payload_too_large"


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    response = await client.post(
        "/v1/auth/signup", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


_JUNK: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5e308,
    "",
    "x" * 5000,
    "\x00",
    "😀",
    [],
    {},
    [{}],
    {"a": {"b": [None]}},
    True,
    "2026-13-45",
    "../../etc/passwd",
    "' OR 1=1 --",
    str(uuid.uuid4()),
]


def _junk_body(rng: random.Random) -> bytes:
    keys = [
        "email",
        "password",
        "name",
        "role",
        "project_id",
        "user_id",
        "refresh_token",
        "display_name",
        "description",
        "everywhere",
        "code",
        "expires_at",
        "current_password",
        "new_password",
    ]
    body = {k: rng.choice(_JUNK) for k in rng.sample(keys, rng.randint(0, len(keys)))}
    return json.dumps(body).encode()


@pytest.mark.parametrize("seed", range(3))
async def test_junk_never_causes_a_server_error(
    app: FastAPI, client: httpx.AsyncClient, alice: TestUser, seed: int
) -> None:
    rng = random.Random(seed)
    for op in operations(app):
        for _ in range(4):
            headers = rng.choice(
                [alice.headers, {}, {"Authorization": "Bearer " + rng.choice(["x", "lrb_x"])}]
            )
            response = await client.request(
                op.method,
                op.url(),
                headers={**headers, "content-type": "application/json"},
                content=_junk_body(rng),
                params={
                    "limit": rng.choice(["0", "-5", "abc", "10", "1000"]),
                    "cursor": rng.choice(["", "zzz", "eyJ4IjoxfQ", "W10"]),
                },
            )
            assert response.status_code < 500, (op, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"


async def test_a_single_valued_query_parameter_given_twice_is_422(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    """Read as its last value, ``?limit=1&limit=50`` would quietly mean 50; parameters
    that take a list (``status``, ``label``) may be repeated."""
    twice = await client.get("/v1/projects?limit=1&limit=50", headers=alice.headers)
    assert twice.status_code == 422, twice.text
    assert twice.json()["errors"] == [
        {
            "field": "limit",
            "message": "give `limit` once; it takes a single value",
            "location": "query",
        }
    ]
    project = await client.post("/v1/projects", json={"name": "lists"}, headers=alice.headers)
    listed = await client.get(
        f"/v1/projects/{project.json()['id']}/instances?status=running&status=stopped",
        headers=alice.headers,
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []


async def test_times_in_query_strings_are_iso_8601_only(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    """A bare number would be read as a Unix time (``to=-4.7e-104`` as 1970): 422."""
    project = await client.post("/v1/projects", json={"name": "times"}, headers=alice.headers)
    audit = f"/v1/projects/{project.json()['id']}/audit"
    for value in ("0.5", "1700000000", "-4.710899098397819e-104", "1e3", " 12 "):
        for name in ("from", "to"):
            response = await client.get(audit, params={name: value}, headers=alice.headers)
            assert response.status_code == 422, (name, value, response.text)
            assert [e["field"] for e in response.json()["errors"]] == [name]
            exported = await client.get(
                f"{audit}/export", params={name: value}, headers=alice.headers
            )
            assert exported.status_code == 422, (name, value, exported.text)
    listed = await client.get(
        audit,
        params={"from": "2026-11-30T12:00:00Z", "to": "2099-01-01T00:00:00+01:00"},
        headers=alice.headers,
    )
    assert listed.status_code == 200, listed.text
    assert [e["action"] for e in listed.json()["items"]] == ["project.create"]


def test_warm_up_builds_before_the_first_request_what_it_would_wait_for(
    settings: Settings, test_database_url: str
) -> None:
    """``lariba serve`` warms its app up before it listens: the OpenAPI document and the
    list parameters read from it exist, and the first request builds nothing."""
    app = create_app(settings, database_url=test_database_url)
    assert app.openapi_schema is None
    warm_up(app)
    assert app.openapi_schema is not None
    lists = app.state.list_query_parameters
    assert lists[("/v1/projects/{project_id}/instances", "get")] == {"status", "label"}
    assert lists[("/v1/projects", "get")] == frozenset()
    built = app.openapi_schema
    assert list_query_parameters(app) is lists
    assert app.openapi() is built


async def test_a_nul_character_anywhere_is_422_naming_where(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    """PostgreSQL text cannot hold U+0000: refused before any query, never a 500 and
    never a stream cut after its 200. An escaped backslash before `u0000` is plain text."""
    named = await client.post("/v1/projects", json={"name": "web\u0000prod"}, headers=alice.headers)
    assert named.status_code == 422, named.text
    assert named.json()["errors"] == [
        {
            "field": "name",
            "message": "text must not contain NUL characters (U+0000)",
            "location": "body",
        }
    ]
    assert (await db.scalar(select(func.count()).select_from(Project))) == 0

    literal = await client.post(
        "/v1/projects", json={"name": "web\\u0000prod"}, headers=alice.headers
    )
    assert literal.status_code == 201, literal.text
    assert literal.json()["name"] == "web\\u0000prod"
    project_id = literal.json()["id"]

    for path in (f"/v1/projects/{project_id}/audit", f"/v1/projects/{project_id}/audit/export"):
        filtered = await client.get(path, params={"actor": "a\x00b"}, headers=alice.headers)
        assert filtered.status_code == 422, filtered.text
        assert filtered.json()["errors"][0]["field"] == "actor"

    login = await client.post(
        "/v1/auth/token", data={"username": "a\x00@example.com", "password": "x" * 12}
    )
    assert login.status_code == 422, login.text
    assert login.json()["errors"][0] == {
        "field": "username",
        "message": "text must not contain NUL characters (U+0000)",
        "location": "body",
    }
