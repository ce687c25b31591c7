"""CPU and memory of the processes behind a ``lariba serve``, sampled while the load test
(bench/load_mix.py) runs: the API process, its embedded PostgreSQL, its local instances."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.cli import busy_cpu_seconds

SAMPLE_SECONDS = 1.0


class Sampler(threading.Thread):
    """Every second: CPU and memory of the server's processes, by part: the API process
    (with its in-process worker), PostgreSQL (the postmaster, which runs detached, and its
    backends) and the local instances (the server's other children)."""

    def __init__(self, server_pid: int, postmaster_pid: int) -> None:
        super().__init__(daemon=True)
        self.server = psutil.Process(server_pid)
        self.postmaster = psutil.Process(postmaster_pid)
        self.stopped = threading.Event()
        self.cpu: dict[str, float] = {"api": 0.0, "postgresql": 0.0, "instances": 0.0}
        self.peak_cores: dict[str, float] = dict.fromkeys(self.cpu, 0.0)
        self.peak_pss_mb: dict[str, float] = dict.fromkeys(self.cpu, 0.0)
        self._last: dict[int, float] = {}
        self.seconds = 0.0
        self.machine_cpu = 0.0
        self.client_cpu = 0.0
        self.api_waited = 0.0

    def _processes(self) -> list[tuple[str, psutil.Process]]:
        found = [("api", self.server), ("postgresql", self.postmaster)]
        with contextlib.suppress(psutil.Error):
            found += [("instances", p) for p in self.server.children(recursive=True)]
        with contextlib.suppress(psutil.Error):
            found += [("postgresql", p) for p in self.postmaster.children(recursive=True)]
        return found

    def _sample(self) -> dict[str, float]:
        """CPU seconds used since the last sample, by part; records memory (PSS: shared
        pages, PostgreSQL's buffers among them, split between the processes sharing them,
        so that the sum means something)."""
        used = dict.fromkeys(self.cpu, 0.0)
        rss = dict.fromkeys(self.cpu, 0.0)
        for part, process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total = times.user + times.system
                used[part] += total - self._last.get(process.pid, 0.0)
                self._last[process.pid] = total
                rss[part] += process.memory_full_info().pss / 1024**2
        for part, megabytes in rss.items():
            self.peak_pss_mb[part] = max(self.peak_pss_mb[part], megabytes)
        return used

    def run(self) -> None:
        self._sample()
        started, machine_before = time.monotonic(), busy_cpu_seconds()
        client_before = time.process_time()
        waited_before = run_queue_seconds(self.server.pid)
        previous = started
        while not self.stopped.wait(SAMPLE_SECONDS):
            used = self._sample()
            now = time.monotonic()
            for part, seconds in used.items():
                self.cpu[part] += seconds
                self.peak_cores[part] = max(self.peak_cores[part], seconds / (now - previous))
            previous = now
        self.seconds = time.monotonic() - started
        self.machine_cpu = busy_cpu_seconds() - machine_before
        self.client_cpu = time.process_time() - client_before
        self.api_waited = run_queue_seconds(self.server.pid) - waited_before

    def summary(self) -> dict[str, Any]:
        seconds = self.seconds or 1.0
        server = sum(self.cpu.values())
        return {
            "seconds": round(self.seconds, 1),
            "mean_cores": {part: round(cpu / seconds, 2) for part, cpu in self.cpu.items()}
            | {"server_total": round(server / seconds, 2)},
            "peak_cores": {part: round(value, 2) for part, value in self.peak_cores.items()},
            "peak_pss_mb": {part: round(value, 1) for part, value in self.peak_pss_mb.items()},
            # Threads of the API process ready to run but waiting for a core, on average:
            # above 0 the server was short of CPU rather than of work.
            "api_waiting_for_cpu": round(self.api_waited / seconds, 2),
            "client_cores": round(self.client_cpu / seconds, 2),
            "other_cores": round((self.machine_cpu - server - self.client_cpu) / seconds, 2),
        }


def run_queue_seconds(pid: int) -> float:
    """Time the process's threads have spent runnable but waiting for a core (the second
    field of Linux's /proc/<pid>/task/<tid>/schedstat); NaN where there is none."""
    waited = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                waited += int((task / "schedstat").read_text().split()[1])
    except OSError:
        return float("nan")
    return waited / 1e9


def find_postmaster(pgdata: Path) -> int:
    """The embedded PostgreSQL's postmaster: ``lariba serve`` starts it detached."""
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def postgres_version(postmaster_pid: int) -> str:
    with contextlib.suppress(psutil.Error, OSError, subprocess.SubprocessError):
        found = subprocess.run(
            [psutil.Process(postmaster_pid).exe(), "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        return found.stdout.strip()
    return "PostgreSQL (version unknown)"


def instance_processes(instances_dir: Path) -> list[psutil.Process]:
    """Processes of the run's local instances: their supervisors name their directory."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(instances_dir) in cmdline or str(instances_dir) in (process.info["cwd"] or ""):
            found.append(process)
    return found
