"""The client waits out a 429 or 503 as its Retry-After says, a few times, then raises the
typed error: against a real HTTP server on 127.0.0.1 that answers as scripted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from lariba.client import AsyncClient, Client, RateLimited, ServerError
from tests.client.scripted import Script, answer, scripted_server

ME = {
    "id": "5f6bdfa4-5a07-4739-983d-5f20a1a51760",
    "email": "ada@example.com",
    "display_name": "Ada",
    "is_platform_admin": False,
    "mfa_enabled": False,
    "created_at": "2026-11-30T14:42:13.240147Z",
}


def problem(status: int, code: str) -> bytes:
    return json.dumps(
        {
            "type": f"urn:lariba:problem:{code}",
            "title": "Busy",
            "status": status,
            "detail": "Try again later.",
            "code": code,
        }
    ).encode()


def busy_then_ok(busy: int, *, status: int = 503, retry_after: str = "0") -> Script:
    def script(number: int, handler: BaseHTTPRequestHandler) -> None:
        if number < busy:
            answer(
                handler,
                status,
                problem(status, "database_unavailable"),
                content_type="application/problem+json",
                headers={"Retry-After": retry_after},
            )
        else:
            answer(handler, 200, json.dumps(ME).encode())

    return script


def test_503_with_retry_after_is_sent_again_until_it_succeeds() -> None:
    with scripted_server(busy_then_ok(2)) as server, Client(server.url, token="t") as client:
        user = client.me()

    assert user.email == "ada@example.com"
    assert [seen.path for seen in server.seen] == ["/v1/me"] * 3
    assert all(seen.headers["authorization"] == "Bearer t" for seen in server.seen)


async def test_async_client_retries_the_same_way() -> None:
    with scripted_server(busy_then_ok(2, status=429)) as server:
        async with AsyncClient(server.url, token="t") as client:
            user = await client.me()

    assert user.id == ME["id"]
    assert len(server.seen) == 3


def test_gives_up_after_its_retries_with_the_typed_error() -> None:
    with (
        scripted_server(busy_then_ok(100, status=429)) as server,
        Client(server.url, token="t", retries=2) as client,
        pytest.raises(RateLimited) as raised,
    ):
        client.me()

    assert len(server.seen) == 3  # the request and two retries
    assert raised.value.status == 429
    assert raised.value.code == "database_unavailable"
    assert raised.value.retry_after == 0


def test_a_long_retry_after_is_capped() -> None:
    with (
        scripted_server(busy_then_ok(1, retry_after="3600")) as server,
        Client(server.url, token="t", max_retry_wait=0.05) as client,
    ):
        user = client.me()

    assert user.email == "ada@example.com"
    assert len(server.seen) == 2


def test_retry_after_as_an_http_date_is_understood() -> None:
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=5), usegmt=True)
    with (
        scripted_server(busy_then_ok(1, retry_after=past)) as server,
        Client(server.url, token="t") as client,
    ):
        client.me()

    assert len(server.seen) == 2


def test_other_failures_are_not_retried() -> None:
    with (
        scripted_server(busy_then_ok(100, status=500)) as server,
        Client(server.url, token="t") as client,
        pytest.raises(ServerError) as raised,
    ):
        client.me()

    assert len(server.seen) == 1
    assert raised.value.status == 500


def test_no_retries_when_asked_for_none() -> None:
    with (
        scripted_server(busy_then_ok(1)) as server,
        Client(server.url, token="t", retries=0) as client,
        pytest.raises(ServerError),
    ):
        client.me()

    assert len(server.seen) == 1


def test_a_streamed_export_is_retried_and_only_the_good_answer_written(tmp_path: Path) -> None:
    line = b'{"id": 1, "action": "project.create"}\n'

    def script(number: int, handler: BaseHTTPRequestHandler) -> None:
        if number == 0:
            answer(handler, 503, problem(503, "database_unavailable"), headers={"Retry-After": "0"})
        else:
            answer(handler, 200, line, content_type="application/x-ndjson")

    target = tmp_path / "audit.jsonl"
    with scripted_server(script) as server, Client(server.url, token="t") as client:
        written = client.audit("p-1").export(target, action="project.")

    assert written == 1
    assert target.read_bytes() == line
    assert [seen.path for seen in server.seen] == [
        "/v1/projects/p-1/audit/export?action=project."
    ] * 2


PROJECT = {
    "id": "0b1c4f0e-8d3e-4c83-9d1a-6f1f1c2b3a4d",
    "name": "web",
    "description": None,
    "role": "owner",
    "created_at": "2026-11-30T14:42:13.240147Z",
    "updated_at": "2026-11-30T14:42:13.240147Z",
}


def test_a_retried_post_carries_one_idempotency_key_so_it_applies_once() -> None:
    """A 503 can come after the change was applied (its commit's answer lost): every
    attempt of one create carries the same key, so the server answers the retry with
    the first result instead of creating twice. Each create has a key of its own."""

    def script(number: int, handler: BaseHTTPRequestHandler) -> None:
        if number in (0, 1):
            answer(
                handler,
                503,
                problem(503, "database_unavailable"),
                content_type="application/problem+json",
                headers={"Retry-After": "0"},
            )
        else:
            answer(handler, 201, json.dumps(PROJECT).encode())

    with scripted_server(script) as server, Client(server.url, token="t") as client:
        assert client.projects.create("web").id == PROJECT["id"]
        client.projects.create("web")

    keys = [seen.headers.get("idempotency-key") for seen in server.seen]
    assert [seen.method for seen in server.seen] == ["POST"] * 4
    assert keys[0] is not None and keys[0] == keys[1] == keys[2]
    assert keys[3] is not None and keys[3] != keys[0]
