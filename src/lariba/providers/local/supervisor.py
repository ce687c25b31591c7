"""The supervisor of one local instance: a detached process that runs the instance's script
and keeps its console log bounded while it runs.

Run as ``python -m lariba.providers.local.supervisor <instance dir>``; it reads
``instance.json`` there, runs ``/bin/sh user-data.sh`` (inside bubblewrap when the record
asks for it) with the size's resource limits, copies the script's stdout and stderr into
``console.log`` (rotated to ``console.log.1`` at ``CONSOLE_LOG_MAX_BYTES``) and exits when
the script does, after removing whatever the script left running in its process group.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import BinaryIO

import psutil

from lariba.providers.local.processes import group_members
from lariba.providers.local.state import CONSOLE_LOG, SCRIPT, InstanceRecord, read_record

CONSOLE_LOG_MAX_BYTES = 1024 * 1024
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ConsoleLog:
    """``console.log`` plus one rotated generation, each at most ``max_bytes``."""

    def __init__(self, directory: Path, *, max_bytes: int = CONSOLE_LOG_MAX_BYTES) -> None:
        self._path = directory / CONSOLE_LOG
        self._previous = directory / f"{CONSOLE_LOG}.1"
        self._max_bytes = max_bytes
        self._file: BinaryIO = self._path.open("ab")
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        while data:
            if self._size >= self._max_bytes:
                self._rotate()
            room = self._max_bytes - self._size
            self._file.write(data[:room])
            self._file.flush()
            self._size += min(room, len(data))
            data = data[room:]

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self._path, self._previous)
        self._file = self._path.open("ab")
        self._size = 0


def script_environment(record: InstanceRecord, directory: Path) -> dict[str, str]:
    """A fresh environment: nothing of Lariba's own (secrets, credentials) leaks in."""
    return {
        "PATH": _PATH,
        "HOME": str(directory),
        "TMPDIR": "/tmp",  # noqa: S108 - private to the instance under bubblewrap
        "LANG": "C.UTF-8",
        "LARIBA_INSTANCE_ID": record.resource_id,
        "PORT": str(record.port),
    }


def script_command(record: InstanceRecord, directory: Path) -> list[str]:
    """``/bin/sh`` on the user data, wrapped in bubblewrap when the record says so."""
    script = ["/bin/sh", str(directory / SCRIPT)]
    if record.sandbox != "bubblewrap":
        return script
    # --die-with-parent ties the sandbox to this supervisor, not to Lariba, so instances
    # still outlive the API and worker. The network is shared: the instance serves on PORT.
    return [
        record.bwrap_path or "bwrap",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",  # noqa: S108 - a fresh tmpfs private to the instance
        "--bind", str(directory), str(directory),
        "--chdir", str(directory),
        "--unshare-pid",
        "--die-with-parent",
        "--",
        *script,
    ]  # fmt: skip


def _limit_resources(record: InstanceRecord) -> None:
    """Runs in the child between fork and exec: the size's limits, nothing else."""
    limits = record.limits
    for which, value in (
        (resource.RLIMIT_AS, limits.memory_mib * 1024 * 1024),
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_NPROC, limits.nproc),
    ):
        # Never above the hard limit Lariba itself runs under: only root may raise it.
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cores[: max(1, limits.vcpus)])


def _copy_output(source: BinaryIO, log: ConsoleLog) -> None:
    while chunk := os.read(source.fileno(), 65536):
        log.write(chunk)


def _remove_leftovers(grace_seconds: float) -> None:
    """Ends what the script left in this process group, as powering off a machine would."""
    me = os.getpid()
    group = os.getpgid(0)
    leftovers = group_members(group, exclude=me)
    if not leftovers:
        return
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    deadline = time.monotonic() + grace_seconds
    while (leftovers := group_members(group, exclude=me)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()


def supervise(directory: Path) -> int:
    record = read_record(directory)
    # A stop signals the whole group: the supervisor outlives the script long enough to
    # copy its last words. A handler (not SIG_IGN) so that the script does not inherit it.
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGHUP, _ignore)
    log = ConsoleLog(directory)
    try:
        script = subprocess.Popen(  # noqa: S603 - the command is built from the record
            script_command(record, directory),
            cwd=directory,
            env=script_environment(record, directory),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _limit_resources(record),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        # The user sees why the instance stopped at once in its console output.
        log.write(f"lariba: the instance could not start: {exc}\n".encode())
        log.close()
        return 1
    assert script.stdout is not None
    copier = threading.Thread(target=_copy_output, args=(script.stdout, log), daemon=True)
    copier.start()
    status = script.wait()
    _remove_leftovers(record.stop_grace_seconds)
    copier.join(timeout=2)
    log.close()
    return status


def _ignore(signum: int, frame: FrameType | None) -> None:
    del signum, frame


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))
