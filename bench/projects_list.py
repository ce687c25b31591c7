"""Benchmark of authenticated ``GET /v1/projects`` beside a bare FastAPI endpoint running
the same SQL, in the same run on the same machine: throughput, p50/p99 latency and the
ratio of the two throughputs.

    uv run python -m bench.projects_list [--duration 10] [--connections 32] [--short]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench.cli import machine
from bench.load import LoadResult, Target, run_load
from bench.servers import (
    SetupError,
    UvicornServer,
    bench_database,
    postgres_version,
    prepare_database,
)
from lariba.core.logging import configure_logging
from lariba.core.settings import Settings

TARGET_RATIO = 0.60
PROJECTS_PER_USER = 20
# Above this much other CPU use, the run shares the machine with someone else's work.
_QUIET_BUSY_CORES = 0.2
# Later rounds find the server warm; this only lets the new connections settle.
_ROUND_WARMUP_SECONDS = 0.5
_PASSWORD = "bench-" + secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Options:
    duration: float
    connections: int
    warmup: float
    rounds: int
    json_path: Path | None


@dataclass(frozen=True)
class SeededUser:
    user_id: str
    access_token: str
    project_ids: list[str]


@dataclass(frozen=True)
class Measurement:
    result: LoadResult
    # CPU the server process used during the timed window.
    server_cpu_seconds: float

    @property
    def server_cpu_ms_per_request(self) -> float:
        answered = len(self.result.latencies_ms)
        return self.server_cpu_seconds * 1000 / answered if answered else math.nan

    def as_json(self) -> dict[str, Any]:
        result = self.result
        return {
            "target": result.target,
            "requests": result.requests,
            "errors": result.errors,
            "first_error": result.first_error,
            "throughput_rps": round(result.throughput, 1),
            "p50_ms": round(result.percentile(0.50), 2),
            "p99_ms": round(result.percentile(0.99), 2),
            "server_cpu_ms_per_request": None
            if math.isnan(self.server_cpu_ms_per_request)
            else round(self.server_cpu_ms_per_request, 3),
        }


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run stops, and the servers and PostgreSQL are stopped."""


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # Ctrl-C reaches both ``uv run`` and this process, and uv passes its copy on: a second
    # signal must not cut the clean-up short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Interrupted


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.projects_list",
        description="Throughput and p50/p99 latency of authenticated GET /v1/projects beside "
        "a bare FastAPI endpoint running the same SQL, and their ratio.",
    )
    parser.add_argument(
        "--duration", type=float, help="timed seconds per target (default 10; 3 with --short)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent keep-alive connections (32)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        help="untimed seconds before a target's first round (default 2; 1 with --short)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds per target, alternating between targets (default 5; 3 with --short)",
    )
    parser.add_argument("--short", action="store_true", help="quick run for CI")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    duration: float = args.duration if args.duration is not None else 3.0 if args.short else 10.0
    warmup: float = args.warmup if args.warmup is not None else 1.0 if args.short else 2.0
    rounds: int = args.rounds if args.rounds is not None else 3 if args.short else 5
    if duration <= 0 or warmup < 0 or args.connections < 1 or rounds < 1:
        parser.error("need --duration > 0, --warmup >= 0, --connections >= 1 and --rounds >= 1")
    return Options(
        duration=duration,
        connections=args.connections,
        warmup=warmup,
        rounds=rounds,
        json_path=args.json,
    )


def _expect(response: httpx.Response, status: int, action: str) -> Any:
    if response.status_code != status:
        raise SetupError(f"{action}: HTTP {response.status_code} {response.text[:500]}")
    return response.json()


def _seed_user(client: httpx.Client, *, email: str, projects: int) -> SeededUser:
    """Signs a user up, logs in and creates ``projects`` projects, all through the API."""
    user = _expect(
        client.post("/v1/auth/signup", json={"email": email, "password": _PASSWORD}),
        201,
        "sign up",
    )
    tokens = _expect(
        client.post("/v1/auth/token", data={"username": email, "password": _PASSWORD}),
        200,
        "log in",
    )
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    project_ids = [
        _expect(
            client.post("/v1/projects", json={"name": f"bench-{i:02d}"}, headers=headers),
            201,
            "create a project",
        )["id"]
        for i in range(projects)
    ]
    return SeededUser(
        user_id=user["id"], access_token=tokens["access_token"], project_ids=project_ids
    )


def _items(server: UvicornServer, target: Target) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.base_url) as client:
        response = client.get(target.path, headers=target.headers)
    items: list[dict[str, Any]] = _expect(response, 200, f"{target.name}: GET")["items"]
    return items


def _check_same_answer(
    bare: list[dict[str, Any]], lariba: list[dict[str, Any]], user: SeededUser
) -> None:
    """The comparison means something only while both endpoints return the same rows
    with the same fields."""
    if sorted(item["id"] for item in lariba) != sorted(user.project_ids):
        raise SetupError("GET /v1/projects did not return exactly the seeded user's projects")
    if [item["id"] for item in bare] != [item["id"] for item in lariba]:
        raise SetupError("the bare endpoint returns other rows than GET /v1/projects")
    if set(bare[0]) != set(lariba[0]):
        raise SetupError(
            "bench/bare_app.py no longer returns the fields of GET /v1/projects: "
            f"bare {sorted(bare[0])}, lariba {sorted(lariba[0])}"
        )


async def _load_and_sample(
    server: UvicornServer, target: Target, *, connections: int, warmup: float, duration: float
) -> Measurement:
    async def cpu_after(delay: float) -> float:
        await asyncio.sleep(delay)
        return server.cpu_seconds()

    window_start = asyncio.create_task(cpu_after(warmup))
    window_end = asyncio.create_task(cpu_after(warmup + duration))
    result = await run_load(target, connections=connections, warmup=warmup, duration=duration)
    return Measurement(result=result, server_cpu_seconds=await window_end - await window_start)


def _measure(targets: list[tuple[UvicornServer, Target]], options: Options) -> list[Measurement]:
    """Loads one target at a time, alternating between them round by round, so a slow
    spell of a shared machine weighs on every target alike rather than on one."""
    rounds: dict[str, list[Measurement]] = {target.name: [] for _, target in targets}
    for index in range(options.rounds):
        warmup = options.warmup if index == 0 else min(options.warmup, _ROUND_WARMUP_SECONDS)
        for server, target in targets:
            _progress(f"round {index + 1}/{options.rounds}: {target.name}")
            rounds[target.name].append(
                asyncio.run(
                    _load_and_sample(
                        server,
                        target,
                        connections=options.connections,
                        warmup=warmup,
                        duration=options.duration / options.rounds,
                    )
                )
            )
    return [
        Measurement(
            result=LoadResult.merged([part.result for part in parts]),
            server_cpu_seconds=sum(part.server_cpu_seconds for part in parts),
        )
        for parts in rounds.values()
    ]


def _busy_cores(seconds: float = 1.0) -> float | None:
    """Cores' worth of CPU the machine spends over ``seconds`` while the benchmark is idle:
    other people's work, which the figures then share the machine with. None off Linux."""

    def sample() -> tuple[int, int]:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return sum(ticks) - idle, sum(ticks)

    try:
        busy_before, total_before = sample()
        time.sleep(seconds)
        busy_after, total_after = sample()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return cores * (busy_after - busy_before) / max(total_after - total_before, 1)


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _benchmark(options: Options, stack: contextlib.ExitStack) -> dict[str, Any]:
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lariba-bench-")))
    configured = os.environ.get("LARIBA_BENCH_DATABASE_URL") or None
    _progress("starting PostgreSQL" if configured is None else "creating a database")
    url = stack.enter_context(bench_database(configured, workdir))
    secret_key = secrets.token_urlsafe(48)
    data_dir = workdir / "data"
    settings = Settings(database_url=url, data_dir=data_dir, secret_key=secret_key)
    prepare_database(url, settings)
    env = {name: value for name, value in os.environ.items() if not name.startswith("LARIBA_")}
    env |= {
        "LARIBA_DATABASE_URL": url,
        "LARIBA_DATA_DIR": str(data_dir),
        "LARIBA_SECRET_KEY": secret_key,
        "LARIBA_LOG_LEVEL": "WARNING",
    }

    _progress("starting the Lariba API and seeding it")
    lariba = UvicornServer.start(
        name="lariba", factory="bench.lariba_app:create_app", env=env, workdir=workdir
    )
    stack.callback(lariba.stop)
    lariba.wait_ready("/readyz")
    with httpx.Client(base_url=lariba.base_url, timeout=30.0) as client:
        user = _seed_user(client, email="bench-a@example.com", projects=PROJECTS_PER_USER)
        _seed_user(client, email="bench-b@example.com", projects=PROJECTS_PER_USER)

    _progress("starting the bare app")
    bare = UvicornServer.start(
        name="bare", factory="bench.bare_app:create_app", env=env, workdir=workdir
    )
    stack.callback(bare.stop)
    bare_target = Target(
        name="bare FastAPI, same SQL", port=bare.port, path=f"/projects?user_id={user.user_id}"
    )
    lariba_target = Target(
        name="lariba GET /v1/projects",
        port=lariba.port,
        path="/v1/projects",
        headers={"Authorization": f"Bearer {user.access_token}"},
    )
    bare.wait_ready(bare_target.path)
    _check_same_answer(_items(bare, bare_target), _items(lariba, lariba_target), user)

    background = _busy_cores()
    measurements = _measure([(bare, bare_target), (lariba, lariba_target)], options)
    bare_rps, lariba_rps = (m.result.throughput for m in measurements)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"postgresql": postgres_version(url)},
        "options": {
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "round_warmup_s": min(options.warmup, _ROUND_WARMUP_SECONDS),
            "rounds": options.rounds,
            "connections": options.connections,
            "projects_listed": PROJECTS_PER_USER,
            "projects_in_database": 2 * PROJECTS_PER_USER,
        },
        "background_busy_cores": None if background is None else round(background, 2),
        "results": [m.as_json() for m in measurements],
        "ratio": round(lariba_rps / bare_rps, 3) if bare_rps else None,
        "target_ratio": TARGET_RATIO,
    }


def _print_report(report: dict[str, Any]) -> None:
    options, machine = report["options"], report["machine"]
    print()
    print(
        f"GET /v1/projects: {options['projects_listed']} of {options['projects_in_database']} "
        "projects, first page (limit 50)"
    )
    print(
        f"{options['connections']} connections; per target {options['duration_s']:g} s timed in "
        f"{options['rounds']} rounds, alternating targets, one at a time; warm-up "
        f"{options['warmup_s']:g} s before the first round, {options['round_warmup_s']:g} s "
        "before the others"
    )
    print()
    header = (
        f"{'target':<26}{'requests':>10}{'errors':>8}{'req/s':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'server CPU ms/req':>19}"
    )
    print(header)
    print("-" * len(header))
    for row in report["results"]:
        print(
            f"{row['target']:<26}{row['requests']:>10}{row['errors']:>8}"
            f"{row['throughput_rps']:>10.1f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{_number(row['server_cpu_ms_per_request'], 19, 3)}"
        )
    print()
    ratio = report["ratio"]
    shown = "n/a" if ratio is None else f"{ratio:.2f}"
    print(f"ratio (lariba / bare throughput): {shown} (target ≥ {report['target_ratio']:.2f})")
    if ratio is None or ratio < report["target_ratio"]:
        print(
            f"BELOW TARGET: Lariba serves less than {report['target_ratio']:.2f} of the bare "
            "endpoint's throughput"
        )
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores shared by the load client, the "
        f"server under test and PostgreSQL {machine['postgresql']}; Python {machine['python']}"
    )
    background = report["background_busy_cores"]
    if background is not None:
        print(f"other work on the machine just before the load: {background:.2f} cores")
        if background > _QUIET_BUSY_CORES:
            print("WARNING: the machine was busy with other work; the figures are low and noisy")
    for row in report["results"]:
        if row["errors"]:
            print(f"errors from {row['target']}: first was {row['first_error']}")


def _number(value: float | None, width: int, decimals: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{decimals}f}"


def main(argv: list[str] | None = None) -> int:
    options = _parse(argv)
    configure_logging("WARNING")
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            report = _benchmark(options, stack)
            _progress("stopping servers")
    except _Interrupted:
        print("interrupted; servers and PostgreSQL stopped", file=sys.stderr)
        return 130
    except SetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    _print_report(report)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(row["errors"] for row in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
