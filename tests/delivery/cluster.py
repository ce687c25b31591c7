"""A small Lariba deployment for tests: several ``lariba serve`` processes on one
database, and a client that spreads requests over them as a load balancer would."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from lariba.core.settings import Settings
from tests.fixtures.serve import free_port
from tests.fixtures.workers import worker_environment

_LOG_TAIL_CHARS = 6000
# How long the balancer keeps trying the replicas for one request before giving up.
FAILOVER_SECONDS = 20.0


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-_LOG_TAIL_CHARS:]

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops a replica: it finishes what it is serving."""
        self.process.send_signal(signal.SIGTERM)

    async def exited(self, *, within: float) -> int:
        try:
            return await asyncio.to_thread(self.process.wait, within)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"API on port {self.port} still running after {within}s:\n{self.output()}"
            ) from None


def _spawn_api(settings: Settings, database_url: str, number: int) -> ApiProcess:
    port = free_port()
    env = worker_environment(settings, database_url)
    env.update(LARIBA_HOST="127.0.0.1", LARIBA_PORT=str(port))
    log = settings.data_dir / f"api-{number}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lariba.cli.main", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    return ApiProcess(process=process, port=port, log=log)


async def wait_ready(apis: list[ApiProcess], *, within: float = 60.0) -> None:
    """Polls each replica's ``/readyz`` until all answer 200."""
    deadline = time.monotonic() + within
    waiting = list(apis)
    async with httpx.AsyncClient(timeout=1) as probe:
        while waiting:
            for api in list(waiting):
                if api.process.poll() is not None:
                    raise AssertionError(f"lariba serve exited early:\n{api.output()}")
                try:
                    if (await probe.get(f"{api.url}/readyz")).status_code == 200:
                        waiting.remove(api)
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                logs = "\n".join(api.output() for api in waiting)
                raise AssertionError(f"lariba serve did not become ready in {within}s:\n{logs}")
            await asyncio.sleep(0.1)


@contextmanager
def lariba_apis(settings: Settings, database_url: str, count: int) -> Iterator[list[ApiProcess]]:
    """``count`` API replicas on ``settings`` and ``database_url``, all started at once
    (await ``wait_ready``); each one still running at the end is SIGKILLed, whatever
    happened."""
    apis = [_spawn_api(settings, database_url, number) for number in range(1, count + 1)]
    try:
        yield apis
    finally:
        for api in apis:
            if api.process.poll() is None:
                api.process.kill()
            api.process.wait()


@dataclass
class Sent:
    """One request as the client saw it: where it was answered, after how many tries."""

    method: str
    path: str
    idempotency_key: str | None
    hedged: bool = False
    status: int | None = None
    replica: int | None = None
    attempts: int = 0
    # How many of its answers said ``Idempotent-Replayed: true``.
    replays: int = 0
    errors: list[str] = field(default_factory=list)
    # Why an answer was not a success, for the failure message.
    problem: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.problem is None


class Balancer:
    """Sends each request to the next replica in turn; a replica that cannot be reached
    (refused, or the connection dropped before an answer) is skipped for the next one.
    Every request is safe to send again: POSTs carry an ``Idempotency-Key``, the others
    are idempotent. Every ``hedge_every``-th POST goes to all replicas at once, as the
    retry of a client whose first try timed out while it still ran. Records every request
    for the test's accounting."""

    def __init__(self, urls: list[str], *, hedge_every: int = 0, timeout: float = 30.0) -> None:
        self.clients = [httpx.AsyncClient(base_url=url, timeout=timeout) for url in urls]
        self.sent: list[Sent] = []
        self.hedge_every = hedge_every
        self._turn = itertools.count()
        self._keys = itertools.count(1)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """An answer of a replica (whatever its status); raises when none answered within
        ``FAILOVER_SECONDS``. ``url`` may be absolute (a presigned URL names the replica
        that signed it): any replica serves it."""
        parts = urlsplit(url)
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path
        headers = dict(headers or {})
        sent = Sent(method=method, path=parts.path, idempotency_key=None)
        if method == "POST":
            number = next(self._keys)
            sent.idempotency_key = headers["Idempotency-Key"] = f"scale-out-{number}"
            sent.hedged = self.hedge_every > 0 and number % self.hedge_every == 0
        self.sent.append(sent)
        if sent.hedged:
            answer = await self._hedged(sent, path, headers=headers, **kwargs)
            if answer is not None:
                return answer
        deadline = time.monotonic() + FAILOVER_SECONDS
        while True:
            replica = next(self._turn) % len(self.clients)
            sent.attempts += 1
            try:
                response = await self.clients[replica].request(
                    method, path, headers=headers, **kwargs
                )
            except httpx.TransportError as exc:
                sent.errors.append(f"replica {replica}: {exc!r}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no replica answered {method} {path}: {sent}") from exc
                if sent.attempts % len(self.clients) == 0:
                    await asyncio.sleep(0.05)  # every replica refused: do not spin
                continue
            self._record(sent, replica, response)
            return response

    async def _hedged(
        self, sent: Sent, path: str, *, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response | None:
        """The POST sent to every replica at once: one must run it and the others replay
        its response, byte for byte. None when no replica could be reached."""
        results = await asyncio.gather(
            *(client.post(path, headers=headers, **kwargs) for client in self.clients),
            return_exceptions=True,
        )
        answers: list[tuple[int, httpx.Response]] = []
        for replica, result in enumerate(results):
            sent.attempts += 1
            if isinstance(result, httpx.TransportError):
                sent.errors.append(f"replica {replica}: {result!r}")
            elif isinstance(result, BaseException):
                raise result
            else:
                answers.append((replica, result))
        for replica, response in answers:
            self._record(sent, replica, response)
        if len(answers) > 1:
            if len({response.content for _, response in answers}) > 1:
                sent.problem = f"replicas answered differently: {[r.text for _, r in answers]}"
            elif sent.replays != len(answers) - 1:
                sent.problem = f"{len(answers) - sent.replays} replicas ran it"
        return answers[0][1] if answers else None

    @staticmethod
    def _record(sent: Sent, replica: int, response: httpx.Response) -> None:
        if sent.succeeded or sent.status is None:
            sent.status = response.status_code
            sent.replica = replica
        if response.headers.get("idempotent-replayed") == "true":
            sent.replays += 1
        if not 200 <= response.status_code < 300:
            sent.problem = response.text[:500]

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)
