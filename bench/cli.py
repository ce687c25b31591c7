"""What a benchmark's command line needs besides its measurement: progress lines, a
description of the machine, and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

_STARTED = time.monotonic()


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run stops, and what it started is stopped."""


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # Ctrl-C reaches both ``uv run`` and this process, and uv passes its copy on: a second
    # signal must not cut the clean-up short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted


def stop_on_signals() -> None:
    """From now on, Ctrl-C and SIGTERM raise ``Interrupted`` in the main thread."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def progress(message: str) -> None:
    """A line on stderr, with the seconds since the benchmark started."""
    print(f"... {time.monotonic() - _STARTED:6.1f} s  {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count() or 1,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _proc_stat_ticks() -> list[int] | None:
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None


def stolen_cpu_seconds() -> float:
    """CPU seconds the hypervisor ran other guests while this machine's cores wanted to
    run (``steal`` in /proc/stat) since boot; NaN off Linux or when not reported. On a
    shared VM, steal during a run makes every process look slower at once."""
    ticks = _proc_stat_ticks()
    if ticks is None or len(ticks) < 8:
        return float("nan")
    return ticks[7] / os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (every process, every
    core); NaN off Linux."""
    ticks = _proc_stat_ticks()
    if ticks is None:
        return float("nan")
    idle = ticks[3] + ticks[4]  # idle + iowait
    # user, nice, system, irq, softirq: steal and guest time are not this machine's work.
    return (sum(ticks[:7]) - idle) / os.sysconf("SC_CLK_TCK")
