"""Local instance metrics, measured from the process table: the CPU time and resident memory
of each instance's processes (its supervisor's process group, less the supervisor itself,
which is Lariba's and not the instance's). The local provider has no network counters per
process, so it reports no network metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil

from lariba.providers.base import ProviderError
from lariba.providers.catalog import Catalog
from lariba.providers.local.compute import LocalCompute
from lariba.providers.metrics import CPU_PERCENT, MEMORY_BYTES, MeasuredInstance, Sample


@dataclass(frozen=True)
class _Group:
    """A running instance: its process group (the supervisor's pid) and its vCPUs."""

    resource_id: uuid.UUID
    group: int
    vcpus: int


class LocalMetrics:
    """``MetricsProvider`` for instances run by ``LocalCompute``. CPU is a rate, so each
    sample reads every instance's CPU time twice, ``cpu_window_seconds`` apart, all
    instances of a batch in the same window."""

    names = frozenset({CPU_PERCENT, MEMORY_BYTES})

    def __init__(
        self, *, compute: LocalCompute, catalog: Catalog, cpu_window_seconds: float = 1.0
    ) -> None:
        self._compute = compute
        self._catalog = catalog
        self._window = cpu_window_seconds

    async def sample(self, instances: Sequence[MeasuredInstance]) -> list[Sample]:
        groups = []
        for instance in instances:
            try:
                observed = await self._compute.describe_instance(
                    region=instance.region, provider_id=instance.provider_id
                )
            except ProviderError:
                continue  # terminated meanwhile: the reconciler reports it
            pid = observed.extra.get("pid")
            if pid is None:
                continue  # not running: nothing to measure
            size = self._catalog.size(observed.size or "")
            groups.append(_Group(instance.resource_id, int(pid), size.vcpus if size else 1))
        if not groups:
            return []
        return await asyncio.to_thread(self._measure, groups)

    def _measure(self, groups: Sequence[_Group]) -> list[Sample]:
        members = _members({g.group for g in groups})
        before: dict[int, float] = {}
        for processes in members.values():
            for process in processes:
                if (cpu := _cpu(process)) is not None:
                    before[process.pid] = cpu
        started = time.monotonic()
        time.sleep(self._window)
        elapsed = time.monotonic() - started
        at = datetime.now(UTC)
        samples = []
        for group in groups:
            used = 0.0
            resident = 0
            measured = False
            for process in members.get(group.group, []):
                cpu = _cpu(process)
                if cpu is None or process.pid not in before:
                    continue  # ended during the window
                try:
                    resident += process.memory_info().rss
                except psutil.Error:
                    continue  # ended meanwhile
                used += max(0.0, cpu - before[process.pid])
                measured = True
            if not measured:
                # No process of it lived through the whole window (the script was
                # starting, exec'ing or ending): no sample rather than a false zero.
                continue
            # The instance is pinned to its vCPUs: anything above 100% is the clock
            # ticks CPU time is counted in, not use.
            percent = min(100.0, 100.0 * used / elapsed / group.vcpus)
            samples += [
                Sample(group.resource_id, CPU_PERCENT, percent, at),
                Sample(group.resource_id, MEMORY_BYTES, float(resident), at),
            ]
        return samples


def _members(groups: set[int]) -> dict[int, list[psutil.Process]]:
    """The live processes of each process group, its leader (the supervisor) excluded.
    One pass over the process table for the whole batch."""
    found: dict[int, list[psutil.Process]] = {}
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            group = os.getpgid(process.pid)
            if (
                group in groups
                and process.pid != group
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                found.setdefault(group, []).append(process)
    return found


def _cpu(process: psutil.Process) -> float | None:
    """CPU seconds of the process and of its children it has waited for: a script that
    runs many short commands uses its CPU in those."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system + times.children_user + times.children_system
