"""The simulated people of the load test (bench/load_mix.py): users who read and move
objects, and one operator per project who takes instances through their life; and what
they record, per endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# An instance on the local provider is a supervisor process on this machine whose start
# costs about a second of CPU: one operator per project takes one instance at a time through
# its life (create, stop, start, reboot, delete), pausing between steps as a person would.
OPERATOR_PAUSE_SECONDS = (3.0, 6.0)
INSTANCE_PROGRAM = "exec sleep 3600\n"
THINK_SECONDS = (0.5, 1.0)
SETTLE_TIMEOUT_SECONDS = 120.0
MAX_LISTED_ERRORS = 10

# What the other users do, and how often (weights).
MIX: dict[str, int] = {
    "list_instances": 15,
    "get_instance": 15,
    "list_operations": 8,
    "get_operation": 7,
    "list_buckets": 10,
    "usage": 8,
    "upload_object": 17,
    "download_object": 20,
}
# The operator's steps, in order, and the endpoint of each.
LIFECYCLE = ("create", "stop", "start", "reboot", "delete")
ENDPOINTS = (
    "GET /instances",
    "GET /instances/{id}",
    "POST /instances",
    "POST /instances/{id}/stop",
    "POST /instances/{id}/start",
    "POST /instances/{id}/reboot",
    "DELETE /instances/{id}",
    "GET /operations",
    "GET /operations/{id}",
    "GET /buckets",
    "GET /usage",
    "POST /objects/presign",
    "PUT <presigned URL>",
    "GET <presigned URL>",
)


@dataclass
class EndpointStats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the answered requests, in milliseconds."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered), max(1, round(fraction * len(ordered)))) - 1]


@dataclass
class Recorder:
    """Every request of the run, by endpoint; ``timed`` is off once the window is over, so
    clean-up requests only count when they fail."""

    endpoints: dict[str, EndpointStats] = field(
        default_factory=lambda: {name: EndpointStats() for name in ENDPOINTS}
    )
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    timed: bool = True

    def error(self, endpoint: str, message: str) -> None:
        self.error_count += 1
        if self.timed:
            self.endpoints[endpoint].errors += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(f"{endpoint}: {message}")

    def answered(self, endpoint: str, milliseconds: float) -> None:
        if self.timed:
            self.endpoints[endpoint].latencies_ms.append(milliseconds)


@dataclass
class Project:
    id: str
    headers: dict[str, str]
    bucket_id: str
    # The operator's instance and the operation it is waiting for, as the users see them.
    instance_id: str | None = None
    operation_id: str | None = None
    objects: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/v1/projects/{self.id}"


class Api:
    """The shared HTTP client, recording every answer under its endpoint's name."""

    def __init__(self, client: httpx.AsyncClient, recorder: Recorder) -> None:
        self.client = client
        self.recorder = recorder

    async def call(
        self, endpoint: str, method: str, url: str, *, expect: int = 200, **kwargs: Any
    ) -> httpx.Response | None:
        """One request; None when it failed (recorded as an error of ``endpoint``)."""
        started = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.recorder.error(endpoint, f"{type(exc).__name__}: {exc}")
            return None
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code != expect:
            self.recorder.error(endpoint, f"HTTP {response.status_code} {response.text[:300]}")
            return None
        self.recorder.answered(endpoint, elapsed_ms)
        return response


@dataclass
class User:
    """One simulated person: sends a request, waits for its answer, thinks, goes on."""

    number: int
    api: Api
    project: Project
    rng: random.Random
    counter: int = 0

    async def call(
        self, endpoint: str, method: str, path: str, *, expect: int = 200, **kwargs: Any
    ) -> httpx.Response | None:
        """A request to the JSON API with the project's API key."""
        return await self.api.call(
            endpoint, method, path, expect=expect, headers=self.project.headers, **kwargs
        )

    def next_name(self) -> str:
        self.counter += 1
        return f"u{self.number}-{self.counter}"

    async def think(self) -> None:
        await asyncio.sleep(self.rng.uniform(*THINK_SECONDS))

    async def run(self, deadline: float) -> None:
        """Picks a task of the mix by weight, until ``deadline``."""
        tasks: dict[str, Callable[[], Awaitable[None]]] = {
            "list_instances": self.list_instances,
            "get_instance": self.get_instance,
            "list_operations": self.list_operations,
            "get_operation": self.get_operation,
            "list_buckets": self.list_buckets,
            "usage": self.usage,
            "upload_object": self.upload_object,
            "download_object": self.download_object,
        }
        names, weights = list(MIX), list(MIX.values())
        # Users arrive over the first second rather than all at once.
        await asyncio.sleep(self.rng.uniform(0, THINK_SECONDS[1]))
        while time.monotonic() < deadline:
            await tasks[self.rng.choices(names, weights)[0]]()
            await self.think()

    async def list_instances(self) -> None:
        await self.call(
            "GET /instances", "GET", f"{self.project.path}/instances", params={"limit": 50}
        )

    async def get_instance(self) -> None:
        if self.project.instance_id is None:
            return await self.list_instances()
        path = f"{self.project.path}/instances/{self.project.instance_id}"
        await self.call("GET /instances/{id}", "GET", path)
        return None

    async def list_operations(self) -> None:
        await self.call(
            "GET /operations", "GET", f"{self.project.path}/operations", params={"limit": 50}
        )

    async def get_operation(self) -> None:
        """Someone else in the project watches the operator's operation too."""
        if self.project.operation_id is None:
            return await self.list_operations()
        path = f"{self.project.path}/operations/{self.project.operation_id}"
        await self.call("GET /operations/{id}", "GET", path)
        return None

    async def list_buckets(self) -> None:
        await self.call("GET /buckets", "GET", f"{self.project.path}/buckets")

    async def usage(self) -> None:
        await self.call("GET /usage", "GET", f"{self.project.path}/usage")

    def _objects_path(self) -> str:
        return f"{self.project.path}/buckets/{self.project.bucket_id}/objects"

    async def upload_object(self) -> None:
        data = self.rng.randbytes(self.rng.randint(1, 64 * 1024))
        key = f"load/{self.next_name()}.bin"
        signed = await self.call(
            "POST /objects/presign",
            "POST",
            f"{self._objects_path()}/presign",
            json={"key": key, "method": "PUT", "content_length": len(data)},
        )
        if signed is None:
            return
        url = signed.json()
        sent = await self.api.call(
            "PUT <presigned URL>", "PUT", url["url"], content=data, headers=url["headers"]
        )
        if sent is not None:
            self.project.objects.append((key, data))

    async def download_object(self) -> None:
        if not self.project.objects:
            return await self.upload_object()
        key, data = self.rng.choice(self.project.objects)
        signed = await self.call(
            "POST /objects/presign",
            "POST",
            f"{self._objects_path()}/presign",
            json={"key": key, "method": "GET"},
        )
        if signed is None:
            return None
        url = signed.json()
        got = await self.api.call(
            "GET <presigned URL>", "GET", url["url"], headers=url.get("headers") or {}
        )
        if got is not None and got.content != data:
            self.api.recorder.error(
                "GET <presigned URL>", f"{key}: {len(got.content)} bytes differ from the upload"
            )
        return None


@dataclass
class Operator(User):
    """The project's operator: takes one instance at a time through create, stop, start,
    reboot and delete, watching each operation until it is done before the next step."""

    pause: tuple[float, float] = OPERATOR_PAUSE_SECONDS
    watch_every: tuple[float, float] = THINK_SECONDS
    step: int = 0

    async def run(self, deadline: float) -> None:
        await asyncio.sleep(self.rng.uniform(0, THINK_SECONDS[1]))
        while time.monotonic() < deadline:
            if self.project.operation_id is not None:
                await self.watch()
                await asyncio.sleep(self.rng.uniform(*self.watch_every))
            else:
                await self.next_step()
                await asyncio.sleep(self.rng.uniform(*self.pause))

    async def next_step(self) -> None:
        project = self.project
        action = LIFECYCLE[self.step % len(LIFECYCLE)]
        if action == "create":
            body = {
                "name": self.next_name(),
                "size": "small",
                "image": "shell",
                "user_data": INSTANCE_PROGRAM,
            }
            answer = await self.call(
                "POST /instances", "POST", f"{project.path}/instances", json=body, expect=202
            )
        elif action == "delete":
            answer = await self.call(
                "DELETE /instances/{id}",
                "DELETE",
                f"{project.path}/instances/{project.instance_id}",
                expect=202,
            )
        else:
            answer = await self.call(
                f"POST /instances/{{id}}/{action}",
                "POST",
                f"{project.path}/instances/{project.instance_id}/{action}",
                expect=202,
            )
        if answer is None:
            return  # recorded; the step is tried again after the pause
        operation = answer.json()
        project.instance_id = operation["resource"]["id"]
        project.operation_id = operation["id"]
        self.step += 1

    async def watch(self) -> bool:
        """Reads the operation once; True once it has succeeded."""
        project = self.project
        path = f"{project.path}/operations/{project.operation_id}"
        answer = await self.call("GET /operations/{id}", "GET", path)
        if answer is None:
            return False
        operation = answer.json()
        if operation["status"] == "failed":
            self.api.recorder.error(
                "GET /operations/{id}",
                f"{operation['type']} of instance {project.instance_id} failed: "
                f"{operation['error']}",
            )
            raise _OperatorStopped
        if operation["status"] != "succeeded":
            return False
        project.operation_id = None
        if operation["type"] == "delete":
            project.instance_id = None
        return True

    async def finish(self) -> None:
        """After the run: waits for the operation in flight, then deletes the instance."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        while self.project.operation_id is not None or self.project.instance_id is not None:
            if time.monotonic() > deadline:
                self.api.recorder.error(
                    "GET /operations/{id}", f"clean-up: {self.project} not done in time"
                )
                return
            try:
                if self.project.operation_id is None:
                    self.step = LIFECYCLE.index("delete")
                    await self.next_step()
                elif not await self.watch():
                    await asyncio.sleep(0.5)
            except _OperatorStopped:
                # Recorded already; a new delete goes on trying.
                self.project.operation_id = None
                await asyncio.sleep(0.5)


class _OperatorStopped(Exception):
    """An operation failed (already recorded): the instance's state is unknown, so the
    operator stops acting for the rest of the run."""


async def operate(operator: Operator, deadline: float) -> None:
    with contextlib.suppress(_OperatorStopped):
        await operator.run(deadline)
