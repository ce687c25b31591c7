"""PostgreSQL restarted while clients keep writing and reading: while it is away every
answer is 503 ``database_unavailable`` (never a 500), the API recovers by itself when it
is back, no acknowledged write is lost, and a write retried with its ``Idempotency-Key``
after a 503 is applied exactly once.

``LARIBA_RELIABILITY=full`` runs 50 writers and 10 readers; the default (CI) 12 and 4."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from lariba.core.embedded import EmbeddedPostgres
from lariba.core.jobs import libpq_url
from tests.fixtures.app import running_client
from tests.fixtures.database import make_settings, prepare_database
from tests.fixtures.identity import TestUser, sign_up

FULL = os.environ.get("LARIBA_RELIABILITY") == "full"
WRITERS = 50 if FULL else 12
READERS = 10 if FULL else 4
BEFORE, AWAY, AFTER = 2.0, 3.0, 3.0  # seconds of load around the outage
RETRY_SECONDS = 0.2


@dataclass
class Record:
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    # Idempotency-Key -> (name, id) of each write the API acknowledged.
    acknowledged: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Keys answered 503 at least once before being acknowledged.
    retried: set[str] = field(default_factory=set)
    # When each success and each 503 arrived (time.monotonic()).
    successes: list[float] = field(default_factory=list)
    refusals: list[float] = field(default_factory=list)

    def saw(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code == 503:
            body = response.json()
            if body.get("code") != "database_unavailable" or "retry-after" not in response.headers:
                self.unexpected.append(response.text)
            self.refusals.append(time.monotonic())
        elif response.status_code < 300:
            self.successes.append(time.monotonic())
        else:
            self.unexpected.append(f"{response.status_code} {response.text}")


async def writer(
    client: httpx.AsyncClient, user: TestUser, n: int, stop: asyncio.Event, record: Record
) -> None:
    """Creates projects one after the other; a 503 is retried with the same key until
    the write is acknowledged, as a well-behaved client does."""
    i = 0
    while not stop.is_set():
        key, name = str(uuid.uuid4()), f"w{n}-{i}"
        while True:
            response = await client.post(
                "/v1/projects",
                json={"name": name},
                headers={**user.headers, "Idempotency-Key": key},
            )
            record.saw(response)
            if response.status_code == 201:
                record.acknowledged[key] = (name, response.json()["id"])
                break
            record.retried.add(key)
            await asyncio.sleep(RETRY_SECONDS)
        i += 1


async def reader(
    client: httpx.AsyncClient, user: TestUser, stop: asyncio.Event, record: Record
) -> None:
    while not stop.is_set():
        record.saw(await client.get("/v1/projects", params={"limit": 20}, headers=user.headers))
        await asyncio.sleep(0.05)


async def test_postgres_restart_under_load_is_503_then_recovers_losing_nothing(
    tmp_path: Path,
) -> None:
    pgdata = tmp_path / "pg"
    server = EmbeddedPostgres.start(pgdata)
    url = server.ensure_database()
    await asyncio.to_thread(prepare_database, url, tmp_path)
    record = Record()
    try:
        async with running_client(make_settings(tmp_path, db_pool_size=10), url) as client:
            user = await sign_up(client)
            stop = asyncio.Event()
            tasks = [
                *(
                    asyncio.create_task(writer(client, user, n, stop, record))
                    for n in range(WRITERS)
                ),
                *(asyncio.create_task(reader(client, user, stop, record)) for _ in range(READERS)),
            ]
            await asyncio.sleep(BEFORE)
            acknowledged_before = len(record.acknowledged)
            await asyncio.to_thread(server.stop)
            stopped_at = time.monotonic()
            await asyncio.sleep(AWAY)
            server = await asyncio.to_thread(EmbeddedPostgres.start, pgdata)
            restarted_at = time.monotonic()
            await asyncio.sleep(AFTER)
            stop.set()
            # Writers finish their current write, retrying it until it is acknowledged.
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    finally:
        await asyncio.to_thread(server.stop)
        server = await asyncio.to_thread(EmbeddedPostgres.start, pgdata)

    try:
        assert not record.unexpected, record.unexpected[:5]
        assert record.statuses[503] > 0, "the outage was never seen"
        assert acknowledged_before > 0 and len(record.acknowledged) > acknowledged_before
        assert record.retried, "no write was refused during the outage"
        # Recovered by itself, without a restart of the API: the last refusal came before
        # the end, and requests succeeded after it.
        assert any(stopped_at <= t <= restarted_at for t in record.refusals)
        assert record.successes[-1] > record.refusals[-1]
        recovered = min(t for t in record.successes if t > record.refusals[-1])
        print(
            f"database restart: {sum(record.statuses.values())} requests "
            f"({dict(record.statuses)}), {len(record.acknowledged)} writes acknowledged, "
            f"{len(record.retried)} retried after a 503; answers again "
            f"{max(0.0, recovered - restarted_at):.2f}s after PostgreSQL was back"
        )

        # Every acknowledged write is there, and each write exactly once.
        with psycopg.connect(libpq_url(url)) as connection:
            rows = connection.execute(
                "SELECT id::text, name FROM projects WHERE name LIKE 'w%%-%%'"
            ).fetchall()
        names = Counter(name for _, name in rows)
        assert [n for n, count in names.items() if count > 1] == []
        stored = {name: pid for pid, name in rows}
        assert dict(record.acknowledged.values()) == stored
    finally:
        await asyncio.to_thread(server.stop)
