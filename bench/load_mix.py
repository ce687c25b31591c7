"""Load test of a real ``lariba serve``: N users for S seconds on a realistic mix (lists,
gets, instance creates, deletes and power actions on the local provider, object uploads and
downloads at presigned URLs, usage), each user thinking between requests. Prints p50 / p95 /
p99 / max per endpoint and the CPU and memory of the server's process tree; exits 1 on any
error.

    uv run python -m bench.load_mix [--short] [--users 200] [--seconds 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.cli import Interrupted, machine, progress, stop_on_signals
from bench.load_users import (
    SETTLE_TIMEOUT_SECONDS,
    THINK_SECONDS,
    Api,
    Operator,
    Project,
    Recorder,
    User,
    operate,
)
from bench.process_sampler import (
    Sampler,
    find_postmaster,
    instance_processes,
    postgres_version,
)
from bench.storage import PASSWORD, lariba_serve

USERS_PER_PROJECT = 40
# The short run is for coverage, not figures: the operator hurries through every step,
# pausing and watching its operations this often.
SHORT_OPERATOR_PACE_SECONDS = (0.1, 0.3)
# Below uvicorn's 5 s keep-alive timeout: a connection the server is closing is not reused.
KEEPALIVE_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0


class LoadError(Exception):
    """The run could not set up or clean up; the message says what."""


async def _wait_operation(
    client: httpx.AsyncClient, headers: dict[str, str], project_id: str, operation_id: str
) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        answer = await client.get(
            f"/v1/projects/{project_id}/operations/{operation_id}", headers=headers
        )
        answer.raise_for_status()
        status = answer.json()["status"]
        if status == "succeeded":
            return
        if status == "failed":
            raise LoadError(f"operation {operation_id} failed: {answer.text}")
        await asyncio.sleep(0.2)
    raise LoadError(f"operation {operation_id} not finished after {SETTLE_TIMEOUT_SECONDS} s")


async def _account(client: httpx.AsyncClient, number: int) -> Project:
    """A user signed up through the API, a project, an API key for it and a bucket."""
    email = f"load-{number}@example.com"
    signup = await client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    signup.raise_for_status()
    login = await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    login.raise_for_status()
    session = {"Authorization": f"Bearer {login.json()['access_token']}"}
    project = await client.post("/v1/projects", json={"name": f"load-{number}"}, headers=session)
    project.raise_for_status()
    project_id = project.json()["id"]
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    key = await client.post(
        "/v1/me/api-keys",
        json={"name": "load", "project_id": project_id, "role": "member", "expires_at": expires},
        headers=session,
    )
    key.raise_for_status()
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    bucket = await client.post(
        f"/v1/projects/{project_id}/buckets", json={"name": "load"}, headers=headers
    )
    bucket.raise_for_status()
    await _wait_operation(client, headers, project_id, bucket.json()["id"])
    return Project(id=project_id, headers=headers, bucket_id=bucket.json()["resource"]["id"])


async def _clean_up(operators: list[Operator]) -> None:
    """Every instance deleted, and the lists say so."""
    await asyncio.gather(*(operator.finish() for operator in operators))
    for operator in operators:
        listed = await operator.call(
            "GET /instances", "GET", f"{operator.project.path}/instances", params={"limit": 50}
        )
        if listed is not None and listed.json()["items"]:
            operator.api.recorder.error(
                "GET /instances", f"clean-up: project {operator.project.id} still lists instances"
            )


@dataclass(frozen=True)
class Options:
    users: int
    seconds: float
    short: bool
    seed: int
    json_path: Path | None


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load_mix", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--users", type=int, help="concurrent users (200; 20 with --short)")
    parser.add_argument("--seconds", type=float, help="length of the run (60; 20 with --short)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the users' choices (1)")
    parser.add_argument(
        "--short",
        action="store_true",
        help="the CI run: 20 users for 20 s, the operators hurrying through every step of "
        "an instance's life",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    users: int = args.users if args.users is not None else 20 if args.short else 200
    seconds: float = args.seconds if args.seconds is not None else 20 if args.short else 60
    if users < 1 or seconds <= 0:
        parser.error("need --users >= 1 and --seconds > 0")
    return Options(
        users=users,
        seconds=seconds,
        short=args.short,
        seed=args.seed,
        json_path=args.json,
    )


async def _load(
    base: str, *, server_pid: int, postmaster_pid: int, options: Options
) -> dict[str, Any]:
    recorder = Recorder()
    projects_count = -(-options.users // USERS_PER_PROJECT)
    limits = httpx.Limits(
        max_connections=options.users + 8,
        max_keepalive_connections=None,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )
    async with httpx.AsyncClient(
        base_url=base, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits
    ) as client:
        progress(f"signing up {projects_count} accounts, each with a project, key and bucket")
        projects = await asyncio.gather(*(_account(client, n) for n in range(projects_count)))
        api = Api(client, recorder)
        operators: list[Operator] = []
        users: list[User] = []
        for number in range(options.users):
            project = projects[number % projects_count]
            rng = random.Random(f"{options.seed}-{number}")
            if number < projects_count:
                operator = Operator(number, api, project, rng)
                if options.short:
                    operator.pause = operator.watch_every = SHORT_OPERATOR_PACE_SECONDS
                operators.append(operator)
            else:
                users.append(User(number, api, project, rng))
        progress(f"{options.users} users for {options.seconds:g} s")
        sampler = Sampler(server_pid, postmaster_pid)
        sampler.start()
        deadline = time.monotonic() + options.seconds
        await asyncio.gather(
            *(user.run(deadline) for user in users),
            *(operate(operator, deadline) for operator in operators),
        )
        sampler.stopped.set()
        sampler.join()
        recorder.timed = False
        progress("waiting for the operations in flight, then deleting every instance")
        await _clean_up(operators)
    return {"recorder": recorder, "sampler": sampler.summary(), "projects": projects_count}


def _report(
    result: dict[str, Any], *, options: Options, postgres: str, load_before: float
) -> dict[str, Any]:
    recorder: Recorder = result["recorder"]
    endpoints = {
        name: {
            "requests": len(stats.latencies_ms) + stats.errors,
            "errors": stats.errors,
            "per_second": round(len(stats.latencies_ms) / options.seconds, 2),
            "p50_ms": round(stats.percentile(0.50), 1),
            "p95_ms": round(stats.percentile(0.95), 1),
            "p99_ms": round(stats.percentile(0.99), 1),
            "max_ms": round(max(stats.latencies_ms, default=float("nan")), 1),
        }
        for name, stats in recorder.endpoints.items()
    }
    return {
        "users": options.users,
        "seconds": options.seconds,
        "seed": options.seed,
        "projects": result["projects"],
        "endpoints": endpoints,
        "errors": recorder.error_count,
        "first_errors": recorder.errors,
        "server": result["sampler"],
        "machine": machine() | {"postgresql": postgres, "load_average_before": load_before},
    }


def _print(summary: dict[str, Any]) -> None:
    print(
        f"{summary['users']} users for {summary['seconds']:g} s in {summary['projects']} "
        f"project{'s' if summary['projects'] != 1 else ''} (one operator each), "
        f"thinking {THINK_SECONDS[0]:g}-{THINK_SECONDS[1]:g} s between requests"
    )
    header = (
        f"{'endpoint':<30}{'requests':>9}{'errors':>7}{'req/s':>8}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    print(header)
    print("-" * len(header))
    total = 0
    for name, row in summary["endpoints"].items():
        total += row["requests"]
        print(
            f"{name:<30}{row['requests']:>9}{row['errors']:>7}{row['per_second']:>8.1f}"
            f"{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}"
        )
    print(f"{'all':<30}{total:>9}{summary['errors']:>7}{total / summary['seconds']:>8.1f}")
    server = summary["server"]
    mean, peak, memory = server["mean_cores"], server["peak_cores"], server["peak_pss_mb"]
    print(
        f"server CPU, mean cores (peak over 1 s): API and worker {mean['api']:.2f} "
        f"({peak['api']:.2f}), PostgreSQL {mean['postgresql']:.2f} ({peak['postgresql']:.2f}), "
        f"instances {mean['instances']:.2f} ({peak['instances']:.2f}); "
        f"all {mean['server_total']:.2f}"
    )
    print(
        f"server peak memory (PSS): API and worker {memory['api']:.0f} MB, "
        f"PostgreSQL {memory['postgresql']:.0f} MB, instances {memory['instances']:.0f} MB"
    )
    print(
        f"API threads waiting for a core: {server['api_waiting_for_cpu']:.2f} on average; "
        f"load client {server['client_cores']:.2f} cores; "
        f"other work on the machine {server['other_cores']:.2f} cores "
        f"(load average {summary['machine']['load_average_before']:.1f} before the run)"
    )
    m = summary["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores shared by the client, the server and "
        f"PostgreSQL; {m['system']}; Python {m['python']}; {m['postgresql']}"
    )
    if summary["errors"]:
        print(f"FAILED: {summary['errors']} errors; the first ones:")
        for line in summary["first_errors"]:
            print(f"  {line}")


def _measure(workdir: Path, options: Options) -> dict[str, Any]:
    """Starts the server, runs the load, stops the server and checks what it left."""
    load_before = os.getloadavg()[0]
    progress("starting lariba serve (embedded PostgreSQL, in-process worker)")
    with lariba_serve(workdir) as (base, server):
        postmaster = find_postmaster(workdir / "data" / "postgres")
        postgres = postgres_version(postmaster)
        result = asyncio.run(
            _load(base, server_pid=server.pid, postmaster_pid=postmaster, options=options)
        )
        if server.poll() is not None:
            result["recorder"].error("lariba serve", f"exited with {server.returncode}")
        progress("stopping lariba serve")
    summary = _report(result, options=options, postgres=postgres, load_before=load_before)
    left = instance_processes(workdir / "data" / "instances")
    if left:
        summary["errors"] += 1
        summary["first_errors"].append(
            f"{len(left)} instance processes outlived the server: "
            + ", ".join(str(process.pid) for process in left)
        )
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
    return summary


def main(argv: list[str] | None = None) -> int:
    options = _parse(argv)
    stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="lariba-load-") as tmp:
        workdir = Path(tmp)
        try:
            summary = _measure(workdir, options)
        except Interrupted:
            print("interrupted", file=sys.stderr)
            return 130
        except (LoadError, httpx.HTTPError) as exc:
            summary = {}
            print(f"set-up failed: {exc}", file=sys.stderr)
        if not summary or summary["errors"]:
            # What the server logged is the only account of a 5xx once the run ends.
            log = (workdir / "serve.log").read_text(errors="replace")
            print(f"lariba serve's log, last lines:\n{log[-4000:]}", file=sys.stderr)
    if not summary:
        return 1
    _print(summary)
    if options.json_path:
        options.json_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
