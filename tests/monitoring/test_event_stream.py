"""The project's events live as server-sent events, through a real HTTP server: status
changes arrive as they happen, a reconnect with Last-Event-ID gets exactly what it
missed, and events of transactions that commit out of id order are never lost."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cli.serving import ApiServer
from lariba.cloud.engine.models import ResourceEvent
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.settings import Settings
from lariba.monitoring.events.stream import event_streams
from tests.fixtures.cloud import (
    act,
    cloud_app,
    cloud_settings,
    create_instance,
    wait_for_operation,
)
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.serve import free_port

STREAM = {"Accept": "text/event-stream"}
FAST_STREAM: dict[str, Any] = {"event_stream_poll_seconds": 0.1}


@dataclass
class Message:
    """One server-sent event, or a comment (a heartbeat)."""

    fields: dict[str, str] = field(default_factory=dict)
    comment: str | None = None

    @property
    def id(self) -> int:
        return int(self.fields["id"])

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.fields["data"])
        return data


@dataclass
class Stream:
    response: httpx.Response
    messages: asyncio.Queue[Message]
    reader: asyncio.Task[None]

    async def next(self, *, within: float = 15.0) -> Message:
        return await asyncio.wait_for(self.messages.get(), within)

    async def events(self, count: int, *, within: float = 30.0) -> list[Message]:
        """The next ``count`` events, skipping comments and the retry hint."""
        out: list[Message] = []
        async with asyncio.timeout(within):
            while len(out) < count:
                message = await self.messages.get()
                if "id" in message.fields:
                    out.append(message)
        return out

    async def events_until(self, to_status: str, *, within: float = 30.0) -> list[Message]:
        """Events up to and including the first that enters ``to_status``."""
        out: list[Message] = []
        async with asyncio.timeout(within):
            while not out or out[-1].data["to_status"] != to_status:
                out += await self.events(1)
        return out

    def pending_events(self) -> list[Message]:
        """What has arrived and not been read, events only."""
        out = []
        while not self.messages.empty():
            message = self.messages.get_nowait()
            if "id" in message.fields:
                out.append(message)
        return out


async def _read(response: httpx.Response, queue: asyncio.Queue[Message]) -> None:
    message = Message()
    async for line in response.aiter_lines():
        if line == "":
            if message.fields or message.comment is not None:
                await queue.put(message)
            message = Message()
        elif line.startswith(":"):
            message.comment = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            message.fields[name] = value.removeprefix(" ")


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, user: TestUser, project_id: str, **headers: str
) -> AsyncIterator[Stream]:
    url = f"/v1/projects/{project_id}/events"
    async with client.stream("GET", url, headers={**user.headers, **STREAM, **headers}) as resp:
        assert resp.status_code == 200, await resp.aread()
        queue: asyncio.Queue[Message] = asyncio.Queue()
        reader = asyncio.create_task(_read(resp, queue))
        try:
            yield Stream(resp, queue, reader)
        finally:
            reader.cancel()
            with suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader


@asynccontextmanager
async def live_server(
    settings: Settings, database_url: str, *, run_worker: bool = True
) -> AsyncIterator[tuple[FastAPI, ApiServer, httpx.AsyncClient]]:
    """The app behind a real uvicorn on a loopback port (ASGI transports may buffer a
    streamed body), and a client of it."""
    async with cloud_app(settings, database_url, run_worker=run_worker) as (app, _asgi):
        port = free_port()
        server = ApiServer(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        serving = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                yield app, server, client
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 10)


async def _project(client: httpx.AsyncClient) -> tuple[TestUser, str]:
    user = await sign_up(client)
    return user, (await create_project(client, user))["id"]


async def _stored_events(db: AsyncSession, resource_id: str) -> list[ResourceEvent]:
    db.expire_all()
    rows = await db.scalars(
        select(ResourceEvent)
        .where(ResourceEvent.resource_id == uuid.UUID(resource_id))
        .order_by(ResourceEvent.id)
    )
    return list(rows)


async def _wait_until_released(app: FastAPI) -> None:
    for _ in range(100):
        if event_streams(app).open == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_streams(app).open} stream(s) still open")


async def test_status_changes_arrive_live(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    settings = cloud_settings(tmp_path, local_compute_enabled=True, **FAST_STREAM)
    async with live_server(settings, test_database_url) as (app, _server, client):
        user, pid = await _project(client)
        async with open_stream(client, user, pid) as stream:
            headers = stream.response.headers
            assert headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-cache"
            assert headers["x-accel-buffering"] == "no"
            assert (await stream.next()).fields == {"retry": "3000"}
            assert event_streams(app).open == 1

            created = await create_instance(client, user, pid, name="live-1", size="nano")
            iid = created["resource"]["id"]
            arrived = await stream.events_until("running")
            assert [(m.data["from_status"], m.data["to_status"]) for m in arrived] == [
                (None, "pending"),
                ("pending", "provisioning"),
                ("provisioning", "running"),
            ]
            assert {m.fields["event"] for m in arrived} == {"status_changed"}
            assert {m.data["resource_id"] for m in arrived} == {iid}
            assert (await wait_for_operation(client, user, created))["status"] == "succeeded"

            # Each message carries the JSON list's item, id for id.
            listed = await client.get(f"/v1/projects/{pid}/events", headers=user.headers)
            assert listed.headers["content-type"] == "application/json"
            by_id = {item["id"]: item for item in listed.json()["items"]}
            assert [m.data for m in arrived] == [by_id[m.id] for m in arrived]
            stored = await _stored_events(db, iid)
            assert [event.id for event in stored] == [m.id for m in arrived]
        await _wait_until_released(app)


async def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    settings = cloud_settings(tmp_path, local_compute_enabled=True, **FAST_STREAM)
    async with live_server(settings, test_database_url) as (app, _server, client):
        user, pid = await _project(client)
        async with open_stream(client, user, pid) as stream:
            created = await create_instance(client, user, pid, name="resume-1", size="nano")
            iid = created["resource"]["id"]
            seen = await stream.events_until("running")
        await _wait_until_released(app)

        # Changes while nobody listens.
        stopped = await wait_for_operation(client, user, await act(client, user, pid, iid, "stop"))
        assert stopped["status"] == "succeeded", stopped

        last = str(seen[-1].id)
        async with open_stream(client, user, pid, **{"Last-Event-ID": last}) as stream:
            missed = await stream.events(2)
            assert [(m.data["from_status"], m.data["to_status"]) for m in missed] == [
                ("running", "stopping"),
                ("stopping", "stopped"),
            ]
            started = await act(client, user, pid, iid, "start")
            live = await stream.events_until("running")
            assert (await wait_for_operation(client, user, started))["status"] == "succeeded"
            await asyncio.sleep(0.5)
            assert stream.pending_events() == []

        received = [m.id for m in seen + missed + live]
        stored = await _stored_events(db, iid)
        assert received == [event.id for event in stored]
        assert len(set(received)) == len(received)

        # ?after= (for curl) is the same resume; after=0 replays everything.
        url = f"/v1/projects/{pid}/events?after=0"
        async with client.stream("GET", url, headers={**user.headers, **STREAM}) as resp:
            queue: asyncio.Queue[Message] = asyncio.Queue()
            reader = asyncio.create_task(_read(resp, queue))
            replayed = await Stream(resp, queue, reader).events(len(stored))
            reader.cancel()
            with suppress(asyncio.CancelledError):
                await reader
        assert [m.id for m in replayed] == received


async def test_foreign_project_is_404_and_json_stays_the_default(
    tmp_path: Path, test_database_url: str
) -> None:
    settings = cloud_settings(tmp_path, **FAST_STREAM)
    async with live_server(settings, test_database_url, run_worker=False) as (app, _s, client):
        _owner, pid = await _project(client)
        stranger = await sign_up(client)
        url = f"/v1/projects/{pid}/events"
        for headers in ({**STREAM}, {**STREAM, "Last-Event-ID": "0"}, {}):
            response = await client.get(url, headers={**stranger.headers, **headers})
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "project_not_found"
        assert event_streams(app).open == 0

        owner_json = await client.get(url, headers={**_owner.headers, "Accept": "*/*"})
        assert owner_json.status_code == 200
        assert owner_json.json() == {"items": [], "next_cursor": None}
        bad = await client.get(url, headers={**_owner.headers, **STREAM, "Last-Event-ID": "x"})
        assert (bad.status_code, bad.json()["code"]) == (422, "validation_failed")


async def test_heartbeat_when_nothing_happens(tmp_path: Path, test_database_url: str) -> None:
    settings = cloud_settings(tmp_path, event_stream_heartbeat_seconds=0.3, **FAST_STREAM)
    async with live_server(settings, test_database_url, run_worker=False) as (_app, _s, client):
        user, pid = await _project(client)
        async with open_stream(client, user, pid) as stream:
            assert "retry" in (await stream.next()).fields
            beats = [await stream.next(within=3) for _ in range(2)]
            assert [beat.comment for beat in beats] == ["keep-alive", "keep-alive"]
            assert all(not beat.fields for beat in beats)


async def test_streams_beyond_the_cap_are_503_and_shutdown_ends_them(
    tmp_path: Path, test_database_url: str
) -> None:
    settings = cloud_settings(tmp_path, event_stream_max_open=1, **FAST_STREAM)
    async with live_server(settings, test_database_url, run_worker=False) as (app, server, client):
        user, pid = await _project(client)
        async with open_stream(client, user, pid) as stream:
            await stream.next()
            refused = await client.get(
                f"/v1/projects/{pid}/events", headers={**user.headers, **STREAM}
            )
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["code"] == "too_many_event_streams"
            assert event_streams(app).open == 1

            # The server stops although a stream is open: the stream ends at once.
            server.should_exit = True
            await asyncio.wait_for(stream.reader, 5)
        assert event_streams(app).open == 0


async def _insert_event(session: AsyncSession, *, resource: dict[str, Any], to_status: str) -> int:
    event = ResourceEvent(
        project_id=uuid.UUID(resource["project_id"]),
        resource_id=uuid.UUID(resource["id"]),
        resource_kind="instance",
        type="status_changed",
        from_status=None,
        to_status=to_status,
    )
    session.add(event)
    await session.flush()
    return event.id


async def test_no_event_is_lost_when_transactions_commit_out_of_id_order(
    tmp_path: Path, test_database_url: str, settings: Settings
) -> None:
    """Ids are taken at INSERT, commits happen later: a reader that has delivered a
    higher id must still deliver a lower one that commits afterwards."""
    stream_settings = cloud_settings(tmp_path, **FAST_STREAM)
    engine = create_engine(settings, test_database_url, pool_size=2, max_overflow=0)
    sessions = create_sessionmaker(engine)
    try:
        async with live_server(stream_settings, test_database_url, run_worker=False) as (
            _app,
            _server,
            client,
        ):
            user, pid = await _project(client)
            created = await create_instance(client, user, pid, name="gap-1", size="nano")
            resource = {"id": created["resource"]["id"], "project_id": pid}

            async with open_stream(client, user, pid) as stream:
                await stream.next()

                # 1. A lower id held open while a higher one commits: neither is
                # delivered until the lower one commits, then both, in id order.
                async with sessions() as slow, sessions() as fast:
                    low = await _insert_event(slow, resource=resource, to_status="stopping")
                    high = await _insert_event(fast, resource=resource, to_status="stopped")
                    assert low < high
                    await fast.commit()
                    await asyncio.sleep(0.5)
                    assert stream.pending_events() == []
                    await slow.commit()
                assert [m.id for m in await stream.events(2)] == [low, high]

            # 2. Transaction order and id order disagree: the older transaction takes
            # the higher id and commits first. It is delivered at once; the lower id
            # still arrives when its transaction commits, also to a client that saw
            # the higher one, left, and came back.
            async with sessions() as older, sessions() as younger:
                async with open_stream(client, user, pid) as stream:
                    await stream.next()
                    await older.execute(select(func.pg_current_xact_id()))
                    await younger.execute(select(func.pg_current_xact_id()))
                    lower = await _insert_event(younger, resource=resource, to_status="pending")
                    higher = await _insert_event(older, resource=resource, to_status="running")
                    assert lower < higher
                    await older.commit()
                    assert [m.id for m in await stream.events(1)] == [higher]
                await younger.commit()

            async with open_stream(client, user, pid, **{"Last-Event-ID": str(higher)}) as back:
                assert [m.id for m in await back.events(1)] == [lower]
                await asyncio.sleep(0.5)
                assert back.pending_events() == []
    finally:
        await engine.dispose()
