"""Process-table queries shared by the provider and the supervisor (which must not import
the provider: it runs as ``python -m`` and would import itself twice)."""

from __future__ import annotations

import contextlib
import os

import psutil


def group_members(group: int, *, exclude: int | None = None) -> list[psutil.Process]:
    """The live (not zombie) processes of a process group."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if (
                process.pid != exclude
                and os.getpgid(process.pid) == group
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process)
    return found
