"""Local instances: each one a supervised process group on this machine (see docs/providers.md).

Each instance is a directory ``<root>/<provider_id>/`` holding ``instance.json`` (the
record), ``user-data.sh`` and the console log. Starting an instance spawns a detached
supervisor (``supervisor.py``, its own session) that runs the script and rotates the console
log while the script runs. A supervisor rather than rotating from the provider on each call:
a chatty script between two calls would otherwise fill the disk, and the script's output
can only be cut cleanly by the process that holds the pipe. Everything else is read from
the record and the process table on every call, so any Lariba process re-adopts instances
after a restart; a recorded pid counts only if its start time matches, so a reused pid is
never signalled. Terminate stops the instance and removes its directory: a terminated
instance is no longer reported, as EC2 forgets terminated instances after a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil

from lariba.providers.base import (
    InstanceSpec,
    InstanceState,
    ObservedInstance,
    PermanentProviderError,
    ProviderNotFound,
)
from lariba.providers.catalog import Catalog, Size
from lariba.providers.local.processes import group_members
from lariba.providers.local.state import (
    CONSOLE_LOG,
    RECORD,
    SCRIPT,
    InstanceRecord,
    Limits,
    read_record,
    write_record,
)

CONSOLE_TAIL_BYTES = 64 * 1024
DEFAULT_NOFILE = 1024
DEFAULT_NPROC = 512
_PROVIDER_ID = re.compile(r"local-[0-9a-f]{12}")
SUPERVISOR_MODULE = "lariba.providers.local.supervisor"
_KILL_WAIT_SECONDS = 5.0


class LocalCompute:
    """``ComputeProvider`` over processes on this machine."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        root: Path,
        enabled: bool,
        stop_grace_seconds: float = 10.0,
        sandbox: bool = True,
    ) -> None:
        self._catalog = catalog
        self._root = root
        self._enabled = enabled
        self._stop_grace_seconds = stop_grace_seconds
        # bubblewrap when the host has it; ``sandbox=False`` forces plain processes.
        self._bwrap = shutil.which("bwrap") if sandbox else None

    async def create_instance(self, spec: InstanceSpec) -> ObservedInstance:
        self._admit(spec.region)
        size = self._size(spec.size)
        if self._catalog.image(spec.image) is None:
            raise PermanentProviderError(
                f"unknown image {spec.image!r}", code="InvalidAMIID.NotFound"
            )
        return await asyncio.to_thread(self._create, spec, size)

    async def find_instance(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedInstance | None:
        self._admit(region)
        return await asyncio.to_thread(self._find, str(resource_id))

    async def describe_instance(self, *, region: str, provider_id: str) -> ObservedInstance:
        self._admit(region)
        return await asyncio.to_thread(self._describe, self._directory(provider_id))

    async def start_instance(self, *, region: str, provider_id: str) -> None:
        self._admit(region)
        await asyncio.to_thread(self._locked_call, provider_id, self._start)

    async def stop_instance(self, *, region: str, provider_id: str) -> None:
        self._admit(region)
        await asyncio.to_thread(self._locked_call, provider_id, self._stop)

    async def reboot_instance(self, *, region: str, provider_id: str) -> None:
        self._admit(region)
        await asyncio.to_thread(self._locked_call, provider_id, self._reboot)

    async def resize_instance(self, *, region: str, provider_id: str, size: str) -> None:
        self._admit(region)
        new_size = self._size(size)
        await asyncio.to_thread(self._locked_call, provider_id, lambda d: self._resize(d, new_size))

    async def terminate_instance(self, *, region: str, provider_id: str) -> None:
        self._admit(region)
        with contextlib.suppress(ProviderNotFound):
            await asyncio.to_thread(self._locked_call, provider_id, self._terminate)

    async def console_output(self, *, region: str, provider_id: str) -> str:
        self._admit(region)
        return await asyncio.to_thread(self._console, self._directory(provider_id))

    async def list_instances(self, *, region: str) -> list[ObservedInstance]:
        self._admit(region)
        return await asyncio.to_thread(self._list)

    # -- checks ---------------------------------------------------------------------------

    def _admit(self, region: str) -> None:
        if not self._enabled:
            raise PermanentProviderError(
                "local compute is disabled (it is off by default in production): set "
                "LARIBA_LOCAL_COMPUTE_ENABLED=true to run instances as processes on this machine",
                code="LocalComputeDisabled",
            )
        if self._catalog.region(region) is None:
            raise PermanentProviderError(f"unknown region {region!r}", code="InvalidRegion")

    def _size(self, name: str) -> Size:
        size = self._catalog.size(name)
        if size is None:
            raise PermanentProviderError(f"unknown size {name!r}", code="InvalidInstanceType")
        return size

    def _directory(self, provider_id: str) -> Path:
        # The id becomes a path: anything but our own format is an instance we never made.
        if not _PROVIDER_ID.fullmatch(provider_id):
            raise ProviderNotFound(f"no instance {provider_id!r}", code="InvalidInstanceID")
        directory = self._root / provider_id
        if not (directory / RECORD).is_file():
            raise ProviderNotFound(f"no instance {provider_id!r}", code="InvalidInstanceID")
        return directory

    # -- operations (blocking, run in a thread) -------------------------------------------

    def _create(self, spec: InstanceSpec, size: Size) -> ObservedInstance:
        provider_id = f"local-{secrets.token_hex(6)}"
        directory = self._root / provider_id
        directory.mkdir(parents=True, mode=0o700)
        (directory / SCRIPT).write_text(spec.user_data or "")
        record = InstanceRecord(
            provider_id=provider_id,
            resource_id=str(spec.resource_id),
            project_id=str(spec.project_id),
            name=spec.name,
            size=size.name,
            image=spec.image,
            port=self._free_port(),
            created_at=datetime.now(UTC).isoformat(),
            stop_grace_seconds=self._stop_grace_seconds,
            sandbox="bubblewrap" if self._bwrap else "none",
            bwrap_path=self._bwrap,
            limits=_limits(size),
        )
        write_record(directory, record)
        with _lock(directory):
            self._start(directory)
        return self._describe(directory)

    def _find(self, resource_id: str) -> ObservedInstance | None:
        return next(
            (
                self._observe(directory, record)
                for directory, record in self._records()
                if record.resource_id == resource_id
            ),
            None,
        )

    def _list(self) -> list[ObservedInstance]:
        return [self._observe(directory, record) for directory, record in self._records()]

    def _describe(self, directory: Path) -> ObservedInstance:
        return self._observe(directory, read_record(directory))

    def _locked_call(self, provider_id: str, operation: Callable[[Path], None]) -> None:
        directory = self._directory(provider_id)
        with _lock(directory):
            if not (directory / RECORD).is_file():  # terminated while we waited
                raise ProviderNotFound(f"no instance {provider_id!r}", code="InvalidInstanceID")
            operation(directory)

    def _start(self, directory: Path) -> None:
        record = read_record(directory)
        if _recorded_pid(record) is None:
            # The intent is on disk before the supervisor exists: a Lariba process killed
            # between the two leaves a record that says "running", and whoever looks next
            # finds that supervisor by its command line instead of starting a second one.
            record.desired = "running"
            write_record(directory, record)
            found = _unrecorded_supervisor(directory)
            record.pid, record.pid_started_at = found or _spawn_supervisor(directory)
        record.desired = "running"
        write_record(directory, record)

    def _stop(self, directory: Path) -> None:
        record = read_record(directory)
        pid = _live_pid(record, directory)
        if pid is not None:
            _end_group(pid, grace_seconds=self._stop_grace_seconds)
            _reap(pid)
        # Recorded once the processes are gone: a stop cut short (the Lariba process
        # killed mid-way) leaves the instance running, so the next pass stops it again,
        # instead of ``stopping`` that every pass would wait on for ever.
        record.desired = "stopped"
        write_record(directory, record)

    def _reboot(self, directory: Path) -> None:
        self._stop(directory)
        self._start(directory)

    def _resize(self, directory: Path, size: Size) -> None:
        record = read_record(directory)
        if _live_pid(record, directory) is not None:
            raise PermanentProviderError(
                f"instance {record.provider_id} must be stopped to be resized",
                code="IncorrectInstanceState",
            )
        record.size = size.name
        record.limits = _limits(size)
        write_record(directory, record)

    def _terminate(self, directory: Path) -> None:
        self._stop(directory)
        shutil.rmtree(directory)

    def _console(self, directory: Path) -> str:
        data = b""
        for name in (f"{CONSOLE_LOG}.1", CONSOLE_LOG):
            with contextlib.suppress(FileNotFoundError):
                data += (directory / name).read_bytes()[-CONSOLE_TAIL_BYTES:]
        return data[-CONSOLE_TAIL_BYTES:].decode("utf-8", errors="replace")

    # -- helpers --------------------------------------------------------------------------

    def _records(self) -> Iterator[tuple[Path, InstanceRecord]]:
        if not self._root.is_dir():
            return
        for directory in sorted(self._root.iterdir()):
            if not _PROVIDER_ID.fullmatch(directory.name):
                continue
            try:
                record = read_record(directory)
            except (OSError, ValueError, LookupError, TypeError):
                continue  # being created or removed by another process
            yield directory, record

    def _observe(self, directory: Path, record: InstanceRecord) -> ObservedInstance:
        pid = _live_pid(record, directory)
        if pid is None:
            state = InstanceState.stopped
        elif record.desired == "stopped":
            state = InstanceState.stopping
        else:
            state = InstanceState.running
        extra = {
            "port": str(record.port),
            "sandbox": record.sandbox,
            "directory": str(directory),
        }
        if pid is not None:
            extra["pid"] = str(pid)
        launched = record.pid_started_at
        return ObservedInstance(
            provider_id=record.provider_id,
            region=self._catalog.regions[0].name,
            state=state,
            size=record.size,
            resource_id=uuid.UUID(record.resource_id),
            project_id=uuid.UUID(record.project_id),
            private_ip="127.0.0.1",
            launched_at=(
                datetime.fromtimestamp(launched, UTC)
                if launched is not None
                else datetime.fromisoformat(record.created_at)
            ),
            extra=extra,
        )

    def _free_port(self) -> int:
        """A port free on 127.0.0.1 now and not promised to another instance."""
        taken = {record.port for _, record in self._records()}
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                port: int = probe.getsockname()[1]
            if port not in taken:
                return port
        raise PermanentProviderError("no free port on 127.0.0.1", code="InsufficientCapacity")


def _limits(size: Size) -> Limits:
    return Limits(
        memory_mib=size.memory_mib,
        vcpus=size.vcpus,
        nofile=int(size.provider.get("nofile", DEFAULT_NOFILE)),
        nproc=int(size.provider.get("nproc", DEFAULT_NPROC)),
    )


@contextlib.contextmanager
def _lock(directory: Path) -> Iterator[None]:
    """One operation at a time per instance, across every Lariba process on the machine."""
    try:
        handle = (directory / ".lock").open("a")
    except FileNotFoundError as exc:
        raise ProviderNotFound(f"no instance {directory.name!r}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _live_pid(record: InstanceRecord, directory: Path) -> int | None:
    """The supervisor's pid if it runs: the recorded one if that very process still runs
    (not a reused pid), else — when the instance should run — one started by a Lariba
    process that died before it could record it."""
    pid = _recorded_pid(record)
    if pid is None and record.desired == "running":
        found = _unrecorded_supervisor(directory)
        pid = found[0] if found else None
    return pid


def _recorded_pid(record: InstanceRecord) -> int | None:
    if record.pid is None or record.pid_started_at is None:
        return None
    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.pid_started_at) > 0.001:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            _reap(record.pid)
            return None
    except psutil.Error:
        return None
    return record.pid


def _unrecorded_supervisor(directory: Path) -> tuple[int, float] | None:
    """The oldest running supervisor of ``directory`` (pid, create time), by its command
    line: the instance's directory is in it and no other process has it."""
    wanted = ["-m", SUPERVISOR_MODULE, str(directory)]
    found: list[tuple[float, int]] = []
    for process in psutil.process_iter(["cmdline", "create_time", "status"]):
        info = process.info
        if (info["cmdline"] or [])[-3:] == wanted and info["status"] != psutil.STATUS_ZOMBIE:
            found.append((info["create_time"], process.pid))
    if not found:
        return None
    started_at, pid = min(found)
    return pid, started_at


def _spawn_supervisor(directory: Path) -> tuple[int, float]:
    """Starts the supervisor in its own session, so it outlives this process."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if "PYTHONPATH" in os.environ:
        environment["PYTHONPATH"] = os.environ["PYTHONPATH"]
    pid = os.posix_spawn(
        sys.executable,
        [sys.executable, "-m", SUPERVISOR_MODULE, str(directory)],
        environment,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (
                os.POSIX_SPAWN_OPEN,
                1,
                str(directory / "supervisor.log"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                0o600,
            ),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    return pid, psutil.Process(pid).create_time()


def _end_group(group: int, *, grace_seconds: float) -> None:
    """SIGTERM to the instance's processes, SIGKILL to the group after the grace period.

    The bubblewrap monitor is spared the SIGTERM: it would die of it and take the sandbox
    down with SIGKILL at once, leaving the script no time to shut down cleanly.
    """
    for process in group_members(group):
        with contextlib.suppress(psutil.Error):
            if not _is_sandbox_monitor(process, group):
                process.terminate()
    if _group_ended(group, within=grace_seconds):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    _group_ended(group, within=_KILL_WAIT_SECONDS)


def _group_ended(group: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while group_members(group):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _is_sandbox_monitor(process: psutil.Process, supervisor: int) -> bool:
    return process.ppid() == supervisor and process.name() == "bwrap"


def _reap(pid: int) -> None:
    """Collects the supervisor's exit status when this process happens to be its parent."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
