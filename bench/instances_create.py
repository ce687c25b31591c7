"""Benchmark of instance creation on the aws provider against a moto server: N creates
through the API until all N instances are ``running``, with 1 and with 2 ``lariba worker``
processes, beside a plain boto3 loop creating N instances on the same moto server in the
same run, and the ratio of the times.

    uv run python -m bench.instances_create [--count 500] [--workers 1,2] [--short]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.cli import Interrupted, machine, progress, stop_on_signals
from bench.creates import (
    IMAGE,
    SIZE,
    STATUS_POLL_SECONDS,
    BenchError,
    Load,
    lariba_phase,
    plain_loop,
    start_lariba,
)
from bench.servers import MotoServer, SetupError, postgres_server, postgres_version
from lariba.core.logging import configure_logging
from lariba.core.settings import Settings
from lariba.providers.catalog import load_catalog

TARGET_RATIO = 0.80
# Above this much other CPU use, the run shares the machine with someone else's work.
_QUIET_BUSY_CORES = 0.2
_DEFAULTS = Settings.model_fields


@dataclass(frozen=True)
class Options:
    load: Load
    workers: list[int]
    json_path: Path | None


def _parse(argv: list[str] | None) -> Options:
    concurrency = _DEFAULTS["worker_concurrency"].default
    parser = argparse.ArgumentParser(
        prog="python -m bench.instances_create",
        description="Time from the first POST to all N instances running, through the API "
        "on the aws provider against moto, beside a plain boto3 loop, and their ratio.",
    )
    parser.add_argument("--count", type=int, help="instances per phase (500; 50 with --short)")
    parser.add_argument(
        "--workers",
        help="numbers of `lariba worker` processes, one phase each, comma-separated "
        "(1,2; 2 with --short)",
    )
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=concurrency,
        help=f"jobs per worker, LARIBA_WORKER_CONCURRENCY (Lariba's default, {concurrency})",
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent connections sending the POSTs (4)"
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        help="LARIBA_RECONCILE_POLL_SECONDS for the run (default: Lariba's, "
        f"{_DEFAULTS['reconcile_poll_seconds'].default:g} s)",
    )
    parser.add_argument(
        "--short", action="store_true", help="quick run for CI: 50 instances, 2 workers only"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    count: int = args.count if args.count is not None else 50 if args.short else 500
    # The short run keeps the phase where two workers share the queue: the one that would
    # show duplicates. Each phase costs its processes' start-up, most of a short run.
    listed: str = args.workers or ("2" if args.short else "1,2")
    try:
        workers = [int(part) for part in listed.split(",")]
    except ValueError:
        parser.error("--workers takes numbers separated by commas, like 1,2")
    if count < 1 or args.clients < 1 or not 1 <= args.worker_concurrency <= 64:
        parser.error("need --count >= 1, --clients >= 1 and 1 <= --worker-concurrency <= 64")
    if not workers or min(workers) < 1:
        parser.error("need at least one worker in every phase")
    if args.poll_seconds is not None and not 0 < args.poll_seconds <= 300:
        parser.error("need 0 < --poll-seconds <= 300")
    load = Load(
        count=count,
        post_connections=args.clients,
        worker_concurrency=args.worker_concurrency,
        reconcile_poll_seconds=args.poll_seconds,
    )
    return Options(load=load, workers=workers, json_path=args.json)


def _server_env(moto: MotoServer | None = None) -> dict[str, str]:
    """The environment of every process started: none of the caller's Lariba, AWS or
    moto settings, so they do not change what is measured; dummy credentials."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LARIBA_", "AWS_", "MOTO_"))
    }
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if moto is not None:
        env |= {"LARIBA_PROVIDER": "aws", "LARIBA_AWS_ENDPOINT_URL": moto.endpoint_url}
    return env


def _benchmark(options: Options, stack: contextlib.ExitStack) -> dict[str, Any]:
    load = options.load
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lariba-bench-")))
    configured = os.environ.get("LARIBA_BENCH_DATABASE_URL") or None
    progress("starting PostgreSQL" if configured is None else "using the configured PostgreSQL")
    postgres = stack.enter_context(postgres_server(configured, workdir))
    catalog = load_catalog("aws")
    phase_number = 0

    def fresh_moto_server() -> MotoServer:
        """A moto process of the phase's own: a reset empties moto's state but not its
        process, which a phase of hundreds of concurrent requests leaves slower for the
        next one; a new process gives every phase, the loop's too, the same start."""
        nonlocal phase_number
        phase_number += 1
        moto = MotoServer.start(env=_server_env(), workdir=workdir, name=f"moto-{phase_number}")
        stack.callback(moto.stop)
        return moto

    def finished(moto: MotoServer) -> None:
        moto.check_alive()
        moto.stop()

    # The loop runs first and last, and the ratios use the mean of both runs: a machine
    # that gets slower or faster during the run then weighs on both sides alike.
    progress(f"plain boto3 loop, first run: creating {load.count} instances")
    moto = fresh_moto_server()
    first = plain_loop(moto, catalog, load, name="plain boto3 loop, 1")
    finished(moto)
    phases = []
    for workers in options.workers:
        # One stack at a time: nothing of another phase runs while one is measured.
        moto = fresh_moto_server()
        lariba = start_lariba(
            workers=workers,
            postgres=postgres,
            load=load,
            base_env=_server_env(moto),
            workdir=workdir,
        )
        stack.callback(lariba.close)
        progress(f"{lariba.name}: starting the API and the workers")
        lariba.wait_ready()
        phases.append(lariba_phase(lariba, postgres=postgres, moto=moto, load=load))
        finished(moto)
    progress(f"plain boto3 loop, second run: creating {load.count} instances")
    moto = fresh_moto_server()
    last = plain_loop(moto, catalog, load, name="plain boto3 loop, 2")
    finished(moto)
    baseline_seconds = (first.seconds + last.seconds) / 2
    poll_default = _DEFAULTS["reconcile_poll_seconds"].default
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine()
        | {
            "postgresql": postgres_version(postgres.url),
            "moto": version("moto"),
            "boto3": version("boto3"),
        },
        "options": {
            "count": load.count,
            "size": SIZE,
            "image": IMAGE,
            "post_connections": load.post_connections,
            "worker_concurrency": load.worker_concurrency,
            "reconcile_poll_seconds": load.reconcile_poll_seconds or poll_default,
            "reconcile_poll_seconds_is_default": load.reconcile_poll_seconds is None,
            "status_poll_seconds": STATUS_POLL_SECONDS,
        },
        "baseline_seconds": round(baseline_seconds, 3),
        "results": [
            first.as_json(load.count, baseline_seconds=None),
            last.as_json(load.count, baseline_seconds=None),
            *(phase.as_json(load.count, baseline_seconds=baseline_seconds) for phase in phases),
        ],
        "target_ratio": TARGET_RATIO,
    }


def _number(value: float | None, width: int, decimals: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{decimals}f}"


def _print_report(report: dict[str, Any]) -> None:
    options, machine_info = report["options"], report["machine"]
    poll = f"{options['reconcile_poll_seconds']:g} s"
    poll += " (Lariba's default)" if options["reconcile_poll_seconds_is_default"] else " (LOWERED)"
    print()
    print(
        f"Instance creates on the aws provider against moto {machine_info['moto']}: "
        f"{options['count']} instances ({options['size']}, {options['image']}), one project"
    )
    print(
        "plain boto3 loop: one client, one instance at a time: its own security group, "
        "run_instances, describe_instances until running"
    )
    print(
        f"lariba: POSTs over {options['post_connections']} connections; `lariba worker` "
        f"processes running {options['worker_concurrency']} jobs each; reconcile poll {poll}; "
        f"timed from the first POST until the API lists all instances running (asked every "
        f"{options['status_poll_seconds']:g} s)"
    )
    print()
    columns = (("client", 7), ("api", 6), ("workers", 8), ("moto", 6), ("postgres", 9))
    header = (
        f"{'target':<20}{'seconds':>8}{'inst/s':>8}{'ratio':>7}{'moto req/inst':>14}"
        "   CPU ms/instance:" + "".join(f"{name:>{width}}" for name, width in columns)
    )
    print(header)
    print("-" * len(header))
    for row in report["results"]:
        cpu = row["cpu_ms_per_instance"]
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else "-"
        print(
            f"{row['target']:<20}{row['seconds']:>8.2f}{row['instances_per_second']:>8.1f}"
            f"{ratio:>7}{row['moto_requests_per_instance']:>14.1f}{'':>18}"
            + "".join(_number(cpu.get(name), width, 1) for name, width in columns)
        )
    print()
    print(
        f"ratio = plain loop seconds (mean of both runs, {report['baseline_seconds']:.2f} s) / "
        f"Lariba seconds; target ≥ {report['target_ratio']:.2f}"
    )
    for row in (r for r in report["results"] if "ratio" in r):
        verdict = "PASS" if row["ratio"] >= report["target_ratio"] else "BELOW TARGET"
        print(f"  {row['target']}: {row['ratio']:.2f} {verdict}")
    print()
    for row in (r for r in report["results"] if "jobs" in r):
        post, picked, done, jobs = (
            row["post_ms"],
            row["accepted_to_picked_up_s"],
            row["accepted_to_succeeded_s"],
            row["jobs"],
        )
        print(f"{row['target']}:")
        print(
            f"  POSTs: all answered after {row['all_posts_answered_s']:.2f} s, "
            f"p50 {post['p50']:.1f} ms, p99 {post['p99']:.1f} ms"
        )
        print(
            f"  per instance, from accepted: picked up by a worker p50 {picked['p50']:.2f} s "
            f"(max {picked['max']:.2f} s), succeeded p50 {done['p50']:.2f} s "
            f"(p95 {done['p95']:.2f} s, max {done['max']:.2f} s)"
        )
        print(
            f"  reconcile jobs: {jobs['per_instance']:.1f} per instance, run time p50 "
            f"{_number(jobs['first_ms']['p50'], 0, 1)} ms (first) / "
            f"{_number(jobs['later_ms']['p50'], 0, 1)} ms (later); due to started p50 "
            f"{_number(jobs['due_to_started_s']['p50'], 0, 2)} s (max "
            f"{_number(jobs['due_to_started_s']['max'], 0, 2)} s); job slots busy "
            f"{jobs['slots_busy']:.0%}"
        )
    print()
    print(
        f"machine: {machine_info['cpu']}, {machine_info['cores']} cores shared by everything "
        f"above; {machine_info['system']}; Python {machine_info['python']}, moto "
        f"{machine_info['moto']}, boto3 {machine_info['boto3']}, PostgreSQL "
        f"{machine_info['postgresql']}"
    )
    _print_per_phase(
        report,
        "other_work_cores",
        "other work on the machine during each phase, in cores",
        "WARNING: the machine was busy with other work; the times are long and noisy "
        "(CPU ms/instance suffers less), rerun on a quiet machine",
    )
    _print_per_phase(
        report,
        "stolen_cores",
        "CPU taken by the hypervisor for other guests (steal), in cores",
        "WARNING: the host was short of CPU for this VM (steal); every process ran "
        "slower at once, the CPU ms/instance of that phase too; compare other runs",
    )


def _print_per_phase(report: dict[str, Any], key: str, title: str, warning: str) -> None:
    """One figure per phase on a line, and ``warning`` when one is above the quiet level."""
    rows = report["results"]
    print(f"{title}: " + "; ".join(f"{row['target']} {_number(row[key], 0, 2)}" for row in rows))
    if any((row[key] or 0) > _QUIET_BUSY_CORES for row in rows):
        print(warning)


def main(argv: list[str] | None = None) -> int:
    options = _parse(argv)
    configure_logging("WARNING")
    stop_on_signals()
    try:
        with contextlib.ExitStack() as stack:
            report = _benchmark(options, stack)
            progress("stopping servers")
    except Interrupted:
        print("interrupted; servers and PostgreSQL stopped", file=sys.stderr)
        return 130
    except (SetupError, BenchError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    _print_report(report)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
