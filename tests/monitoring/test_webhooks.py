"""Webhooks against a real receiver on 127.0.0.1: signed deliveries of resource events,
retries with backoff and their log, replay, no double sends with two workers, the SSRF
guard at creation and at send time, and nothing sent for a rolled-back change."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.cloud.engine.operations import set_status
from lariba.core.secrets import SecretBox
from lariba.core.settings import Settings
from lariba.monitoring.models import Webhook, WebhookAttempt, WebhookDelivery
from lariba.monitoring.webhooks.delivery import secret_purpose
from lariba.monitoring.webhooks.service import allow_http, enqueue_event, event_payload
from lariba.monitoring.webhooks.ssrf import allowed_networks, check_destination
from tests.fixtures.cloud import (
    cloud_client,
    cloud_settings,
    create_instance,
    delete_all_instances,
    wait_for_operation,
)
from tests.fixtures.database import TEST_SECRET_KEY
from tests.fixtures.identity import TestUser, create_project, sign_up

# Tiny timings: backoff 0.2 s doubling to 1 s, four attempts.
FAST_WEBHOOKS: dict[str, Any] = {
    "webhook_allowed_networks": "127.0.0.0/8",
    "webhook_retry_base_seconds": 0.2,
    "webhook_retry_max_seconds": 1.0,
    "webhook_max_attempts": 4,
    "webhook_timeout_seconds": 2.0,
}


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300) -> bool:
    """The check docs/webhooks.md tells receivers to make, as written there."""
    timestamp = headers["lariba-webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    for part in headers["lariba-webhook-signature"].split():
        version, _, signature = part.partition("=")
        if version == "v1" and hmac.compare_digest(signature, expected.hexdigest()):
            return True
    return False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver that records every request; ``fail_next`` answers 500 that
    many times; ``delay`` holds each answer."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0
    delay: float = 0.0
    in_flight: Counter[str] = field(default_factory=Counter)
    overlaps: list[str] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Received(scope["path"], headers, body, time.monotonic()))
        delivery = headers.get("lariba-webhook-id", "")
        if self.in_flight[delivery]:
            self.overlaps.append(delivery)
        self.in_flight[delivery] += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight[delivery] -= 1
        status, answer, extra = 200, b"ok", []
        if scope["path"] == "/redirect":
            status, extra = 302, [(b"location", self.url("/hook").encode())]
        elif self.fail_next > 0:
            self.fail_next -= 1
            status, answer = 500, b"boom"
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": answer})


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(receiver, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


@pytest.fixture
def hook_settings(tmp_path: Path) -> Settings:
    return cloud_settings(tmp_path, **FAST_WEBHOOKS)


async def make_webhook(
    client: httpx.AsyncClient,
    user: TestUser,
    project_id: str,
    url: str,
    *,
    event_types: list[str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/projects/{project_id}/webhooks",
        json={"url": url, "event_types": event_types or ["*"], "description": "test"},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(
    client: httpx.AsyncClient, user: TestUser, project_id: str, webhook_id: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/projects/{project_id}/webhooks/{webhook_id}/deliveries", headers=user.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s")
        await asyncio.sleep(0.05)


async def settled(
    client: httpx.AsyncClient, user: TestUser, project_id: str, webhook_id: str, count: int
) -> list[dict[str, Any]]:
    """Waits until ``count`` deliveries exist and none is pending; returns them."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = await deliveries(client, user, project_id, webhook_id)
        return len(found) >= count and all(d["status"] != "pending" for d in found)

    await wait_for(done, what=f"{count} settled deliveries")
    return found


async def emit(db: AsyncSession, project_id: str, *, n: int = 1) -> None:
    """Commits ``n`` events through the channel alerts will use."""
    for i in range(n):
        await enqueue_event(
            db,
            project_id=uuid.UUID(project_id),
            event_type="resource.drift",
            payload=event_payload(
                event_type="resource.drift",
                project_id=uuid.UUID(project_id),
                data={"n": i},
            ),
        )
    await db.commit()


# --- managing webhooks ---------------------------------------------------------------


async def test_secret_is_shown_once_and_stored_encrypted(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    url = f"/v1/projects/{project['id']}/webhooks"
    response = await client.post(
        url,
        json={"url": "http://127.0.0.1:9/x", "event_types": ["resource.status_changed"]},
        headers=alice.headers,
    )
    # 127.0.0.1 is not allowed by default: refused before anything is stored.
    assert response.status_code == 422
    assert response.json()["code"] == "webhook_address_not_allowed"
    assert response.json()["errors"][0]["field"] == "url"

    created = await client.post(
        url,
        json={"url": "https://93.184.215.14/hooks", "event_types": ["resource.*"]},
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 43
    assert body["event_types"] == ["resource.*"] and body["enabled"] is True

    row = await db.get(Webhook, uuid.UUID(body["id"]))
    assert row is not None
    assert secret not in row.secret_encrypted
    box = SecretBox(TEST_SECRET_KEY.encode())
    assert box.decrypt(row.secret_encrypted, purpose=secret_purpose(row.id)).decode() == secret

    shown = await client.get(f"{url}/{body['id']}", headers=alice.headers)
    assert shown.status_code == 200 and "secret" not in shown.json()
    listed = await client.get(url, headers=alice.headers)
    assert [w["id"] for w in listed.json()["items"]] == [body["id"]]
    assert "secret" not in listed.text

    updated = await client.patch(
        f"{url}/{body['id']}",
        json={"enabled": False, "description": "paused"},
        headers=alice.headers,
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["enabled"], updated.json()["description"]) == (False, "paused")

    rotated = await client.post(f"{url}/{body['id']}/rotate-secret", headers=alice.headers)
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    await db.refresh(row)
    assert box.decrypt(row.secret_encrypted, purpose=secret_purpose(row.id)).decode() == new_secret

    deleted = await client.delete(f"{url}/{body['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    db.expire_all()
    assert await db.get(Webhook, uuid.UUID(body["id"])) is None
    assert (await client.get(f"{url}/{body['id']}", headers=alice.headers)).json()[
        "code"
    ] == "webhook_not_found"


async def test_members_below_admin_are_403_and_strangers_404(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, db: AsyncSession
) -> None:
    project = await create_project(client, alice)
    invitation = await client.post(
        f"/v1/projects/{project['id']}/invitations",
        json={"email": bob.email, "role": "member"},
        headers=alice.headers,
    )
    await client.post(f"/v1/invitations/{invitation.json()['token']}/accept", headers=bob.headers)
    body = {"url": "https://93.184.215.14/hooks", "event_types": ["*"]}
    url = f"/v1/projects/{project['id']}/webhooks"
    as_member = await client.post(url, json=body, headers=bob.headers)
    assert as_member.status_code == 403
    assert as_member.json()["code"] == "insufficient_role"
    assert (await client.get(url, headers=bob.headers)).status_code == 403
    stranger = await sign_up(client, email="mallory@example.com")
    foreign = await client.post(url, json=body, headers=stranger.headers)
    assert foreign.status_code == 404 and foreign.json()["code"] == "project_not_found"
    assert await db.scalar(select(func.count()).select_from(Webhook)) == 0


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://169.254.169.254/latest/meta-data/", "webhook_address_not_allowed"),
        ("https://10.0.0.1/hook", "webhook_address_not_allowed"),
        ("http://127.0.0.1:8000/hook", "webhook_address_not_allowed"),
        ("http://[::1]/hook", "webhook_address_not_allowed"),
        ("http://[::ffff:127.0.0.1]/hook", "webhook_address_not_allowed"),
        ("http://[fe80::1]/hook", "webhook_address_not_allowed"),
        ("http://2130706433/", "webhook_address_not_allowed"),
        ("http://0177.0.0.1/", "webhook_address_not_allowed"),
        ("http://0x7f.1/", "webhook_address_not_allowed"),
        ("http://localhost:8000/", "webhook_address_not_allowed"),
        ("http://0.0.0.0/", "webhook_address_not_allowed"),
        ("http://224.0.0.1/", "webhook_address_not_allowed"),
        ("https://user:pw@93.184.215.14/hook", "invalid_webhook_url"),
        ("ftp://93.184.215.14/hook", "invalid_webhook_url"),
        ("https:///no-host", "invalid_webhook_url"),
        ("https://93.184.215.14/" + "a" * 2048, "validation_failed"),
        ("https://no-such-host.invalid/hook", "webhook_host_unresolvable"),
    ],
)
async def test_unsafe_urls_are_refused_at_creation(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, url: str, code: str
) -> None:
    project = await create_project(client, alice)
    response = await client.post(
        f"/v1/projects/{project['id']}/webhooks",
        json={"url": url, "event_types": ["*"]},
        headers=alice.headers,
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["errors"][0]["field"] == "url"
    assert await db.scalar(select(func.count()).select_from(Webhook)) == 0


async def test_unknown_event_type_is_422(client: httpx.AsyncClient, alice: TestUser) -> None:
    project = await create_project(client, alice)
    response = await client.post(
        f"/v1/projects/{project['id']}/webhooks",
        json={"url": "https://93.184.215.14/h", "event_types": ["resource.exploded"]},
        headers=alice.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "event_types"
    assert "resource.status_changed" in response.json()["errors"][0]["message"]


async def test_http_needs_the_operator_outside_development(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    async with make_client(webhook_allow_http=False) as client:
        user = await sign_up(client)
        project = await create_project(client, user)
        response = await client.post(
            f"/v1/projects/{project['id']}/webhooks",
            json={"url": "http://93.184.215.14/h", "event_types": ["*"]},
            headers=user.headers,
        )
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_webhook_url"
        assert "https" in response.json()["detail"]
    production = Settings(
        env="production", secret_key="x" * 40, database_url="postgresql://db/lariba"
    )
    assert allow_http(production) is False
    await check_destination(
        "https://127.0.0.1/", allow_http=False, allowed=allowed_networks("127.0.0.0/8")
    )


# --- delivering ------------------------------------------------------------------------


async def test_instance_status_changes_arrive_signed(
    hook_settings: Settings, test_database_url: str, receiver: Receiver
) -> None:
    async with cloud_client(hook_settings, test_database_url) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(
            client, user, project_id, receiver.url(), event_types=["resource.status_changed"]
        )
        operation = await create_instance(client, user, project_id, size="nano", image="shell")
        done = await wait_for_operation(client, user, operation)
        assert done["status"] == "succeeded", done
        instance_id = operation["resource"]["id"]

        async def running_arrived() -> bool:
            return any(r.json()["data"]["to_status"] == "running" for r in receiver.requests)

        await wait_for(running_arrived, what="the running event")
        try:
            for request in receiver.requests:
                assert verify(webhook["secret"], request.headers, request.body), request
                assert request.headers["content-type"] == "application/json"
                event = request.json()
                assert event["type"] == "resource.status_changed"
                assert event["project_id"] == project_id
                assert event["data"]["resource_kind"] == "instance"
                assert event["data"]["resource_id"] == instance_id
                uuid.UUID(request.headers["lariba-webhook-id"])
            statuses = [r.json()["data"]["to_status"] for r in receiver.requests]
            assert {"pending", "running"} <= set(statuses), statuses
            # A tampered body or another secret does not verify.
            first = receiver.requests[0]
            assert not verify(webhook["secret"], first.headers, first.body + b" ")
            assert not verify("whsec_other", first.headers, first.body)

            log = await settled(client, user, project_id, webhook["id"], len(receiver.requests))
            assert {d["id"] for d in log} == {
                r.headers["lariba-webhook-id"] for r in receiver.requests
            }
            for delivery in log:
                assert delivery["status"] == "succeeded"
                [attempt] = delivery["attempts"]
                assert (attempt["status_code"], attempt["succeeded"]) == (200, True)
                assert attempt["response_body"] == "ok"
        finally:
            await delete_all_instances(client, user, project_id)


async def test_operation_state_changes_arrive_signed(
    hook_settings: Settings, test_database_url: str, receiver: Receiver
) -> None:
    async with cloud_client(hook_settings, test_database_url) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(
            client, user, project_id, receiver.url(), event_types=["operation.*"]
        )
        created = await client.post(
            f"/v1/projects/{project_id}/buckets",
            json={"name": f"ops-{uuid.uuid4().hex[:8]}"},
            headers=user.headers,
        )
        assert created.status_code == 202, created.text
        operation = created.json()
        assert (await wait_for_operation(client, user, operation))["status"] == "succeeded"

        async def succeeded_arrived() -> bool:
            return any(r.json()["type"] == "operation.succeeded" for r in receiver.requests)

        await wait_for(succeeded_arrived, what="operation.succeeded")
        events = [r.json() for r in receiver.requests]
        assert all(verify(webhook["secret"], r.headers, r.body) for r in receiver.requests)
        types = [e["type"] for e in events]
        assert types[0] == "operation.pending"
        assert "operation.succeeded" in types
        assert not any(t.startswith("resource.") for t in types)
        for event in events:
            data = event["data"]
            assert data["operation_id"] == operation["id"]
            assert data["resource_id"] == operation["resource"]["id"]
            assert data["resource_kind"] == "bucket"
            assert data["operation_type"] == "create"
            assert data["status"] == event["type"].removeprefix("operation.")
            assert data["created_by"]["id"] == str(user.id)


async def test_failing_receiver_is_retried_with_growing_waits_and_logged(
    hook_settings: Settings,
    test_database_url: str,
    receiver: Receiver,
    db: AsyncSession,
) -> None:
    receiver.fail_next = 3
    async with cloud_client(hook_settings, test_database_url) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(client, user, project_id, receiver.url())
        await emit(db, project_id)
        [delivery] = await settled(client, user, project_id, webhook["id"], 1)

    assert delivery["status"] == "succeeded"
    assert [(a["number"], a["status_code"], a["succeeded"]) for a in delivery["attempts"]] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, False),
        (4, 200, True),
    ]
    assert delivery["attempts"][0]["error"] == "HTTP 500"
    assert delivery["attempts"][0]["response_body"] == "boom"
    assert len(receiver.requests) == 4
    assert len({r.headers["lariba-webhook-id"] for r in receiver.requests}) == 1
    times = [r.at for r in receiver.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Equal-jitter backoff: wait n is between half and all of min(1 s, 0.2 s * 2**(n-1)),
    # and no retry comes before its wait: the third waits at least 0.4 s, twice the
    # first's longest. (Arrivals also carry the worker's pick-up delay, up to its poll
    # interval, so the gaps themselves are not compared with each other.)
    for n, gap in enumerate(gaps, start=1):
        assert gap >= min(1.0, 0.2 * 2 ** (n - 1)) / 2 - 0.02, gaps
    stored = await db.scalar(
        select(func.count())
        .select_from(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == uuid.UUID(delivery["id"]))
    )
    assert stored == 4


async def test_exhausted_delivery_fails_and_replay_sends_it_again(
    hook_settings: Settings,
    test_database_url: str,
    receiver: Receiver,
    db: AsyncSession,
) -> None:
    receiver.fail_next = 100
    async with cloud_client(hook_settings, test_database_url) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(client, user, project_id, receiver.url())
        await emit(db, project_id)
        [failed] = await settled(client, user, project_id, webhook["id"], 1)
        assert failed["status"] == "failed"
        assert failed["attempt_count"] == 4 and failed["last_status_code"] == 500
        assert len(receiver.requests) == 4

        receiver.fail_next = 0
        base = f"/v1/projects/{project_id}/webhooks/{webhook['id']}/deliveries"
        replay = await client.post(f"{base}/{failed['id']}/replay", headers=user.headers)
        assert replay.status_code == 202, replay.text
        assert (replay.json()["status"], replay.json()["series"]) == ("pending", 2)
        [again] = await settled(client, user, project_id, webhook["id"], 1)

        assert again["id"] == failed["id"] and again["status"] == "succeeded"
        assert [(a["series"], a["number"], a["succeeded"]) for a in again["attempts"]] == [
            (1, 1, False),
            (1, 2, False),
            (1, 3, False),
            (1, 4, False),
            (2, 1, True),
        ]
        # Same payload, same id: a receiver that saw it succeed may drop it.
        assert receiver.requests[-1].body == receiver.requests[0].body
        assert receiver.requests[-1].headers["lariba-webhook-id"] == failed["id"]
        assert verify(webhook["secret"], receiver.requests[-1].headers, receiver.requests[-1].body)

        # A delivery still being sent is not replayed twice at once.
        await db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == uuid.UUID(failed["id"]))
            .values(status="pending", next_attempt_at=func.now() + func.make_interval(0, 0, 0, 1))
        )
        await db.commit()
        busy = await client.post(f"{base}/{failed['id']}/replay", headers=user.headers)
        assert busy.status_code == 409 and busy.json()["code"] == "delivery_in_progress"


async def test_two_workers_never_send_a_delivery_twice(
    hook_settings: Settings,
    test_database_url: str,
    receiver: Receiver,
    db: AsyncSession,
) -> None:
    receiver.delay = 0.1
    async with (
        cloud_client(hook_settings, test_database_url, run_worker=False) as client,
        cloud_client(hook_settings, test_database_url),
        cloud_client(hook_settings, test_database_url),
    ):
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(client, user, project_id, receiver.url())
        await emit(db, project_id, n=40)
        log = await settled(client, user, project_id, webhook["id"], 40)

    assert len(log) == 40 and all(d["status"] == "succeeded" for d in log)
    assert all(len(d["attempts"]) == 1 for d in log)
    sent = Counter(r.headers["lariba-webhook-id"] for r in receiver.requests)
    assert set(sent) == {d["id"] for d in log}
    assert max(sent.values()) == 1, sent.most_common(3)
    assert receiver.overlaps == []


async def test_redirects_are_not_followed(
    hook_settings: Settings,
    test_database_url: str,
    receiver: Receiver,
    db: AsyncSession,
) -> None:
    async with cloud_client(hook_settings, test_database_url) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(client, user, project_id, receiver.url("/redirect"))
        await emit(db, project_id)
        [delivery] = await settled(client, user, project_id, webhook["id"], 1)

    assert delivery["status"] == "failed"
    assert {a["status_code"] for a in delivery["attempts"]} == {302}
    assert "redirects are not followed" in delivery["attempts"][0]["error"]
    assert receiver.to("/hook") == []
    assert len(receiver.to("/redirect")) == 4


async def test_address_refused_at_send_time_is_not_contacted(
    hook_settings: Settings,
    test_database_url: str,
    receiver: Receiver,
    db: AsyncSession,
    tmp_path: Path,
) -> None:
    """Allowed when saved, not when sent (DNS changed, or the operator narrowed the
    allowance): the sender checks again and never connects."""
    async with cloud_client(hook_settings, test_database_url, run_worker=False) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(client, user, project_id, receiver.url())
    strict = cloud_settings(
        tmp_path / "strict", **{**FAST_WEBHOOKS, "webhook_allowed_networks": ""}
    )
    async with cloud_client(strict, test_database_url) as client:
        await emit(db, project_id)
        [delivery] = await settled(client, user, project_id, webhook["id"], 1)
    assert delivery["status"] == "failed"
    assert delivery["attempts"][0]["status_code"] is None
    assert delivery["attempts"][0]["error"].startswith("refused: resolves to 127.0.0.1")
    assert receiver.requests == []


async def test_rolled_back_change_sends_nothing(
    hook_settings: Settings,
    test_database_url: str,
    receiver: Receiver,
    db: AsyncSession,
) -> None:
    async with cloud_client(hook_settings, test_database_url, run_worker=False) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        await make_webhook(
            client, user, project_id, receiver.url(), event_types=["resource.status_changed"]
        )
        operation = await create_instance(client, user, project_id, size="nano", image="shell")

    count = select(func.count()).select_from(WebhookDelivery)
    jobs = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'send_webhook_deliveries'"
    # The committed create made its delivery (and its job) with it.
    assert await db.scalar(count) == 1
    jobs_before = (await db.execute(text(jobs))).scalar()
    assert jobs_before == 1

    resource = await db.scalar(select(Resource).where(Resource.project_id == uuid.UUID(project_id)))
    assert resource is not None and str(resource.id) == operation["resource"]["id"]
    set_status(db, resource, "error", reason="would be sent")
    await db.flush()
    assert await db.scalar(count) == 2  # made in the same transaction...
    await db.rollback()
    assert await db.scalar(count) == 1  # ...and gone with it
    assert (await db.execute(text(jobs))).scalar() == jobs_before
    assert receiver.requests == []


async def test_unreadable_secret_is_never_sent_unsigned(
    hook_settings: Settings,
    test_database_url: str,
    receiver: Receiver,
    db: AsyncSession,
) -> None:
    """A secret sealed with another master key (one rotated away) fails the attempt
    visibly instead of sending without a valid signature."""
    async with cloud_client(hook_settings, test_database_url) as client:
        user = await sign_up(client)
        project_id = (await create_project(client, user))["id"]
        webhook = await make_webhook(client, user, project_id, receiver.url())
        webhook_id = uuid.UUID(webhook["id"])
        foreign = SecretBox(b"another-master-key-0123456789abcdef").encrypt(
            b"whsec_x", purpose=secret_purpose(webhook_id)
        )
        await db.execute(
            update(Webhook).where(Webhook.id == webhook_id).values(secret_encrypted=foreign)
        )
        await emit(db, project_id)
        [delivery] = await settled(client, user, project_id, webhook["id"], 1)
    assert delivery["status"] == "failed"
    assert "cannot be decrypted" in delivery["attempts"][0]["error"]
    assert receiver.requests == []
