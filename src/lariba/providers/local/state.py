"""What a local instance is on disk: ``instance.json`` in its directory, the single source of
truth that lets any Lariba process (re-)adopt the instance after a restart."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RECORD = "instance.json"
SCRIPT = "user-data.sh"
CONSOLE_LOG = "console.log"

DesiredState = Literal["running", "stopped"]
Sandbox = Literal["none", "bubblewrap"]


@dataclass
class Limits:
    """What a size means on this machine: RLIMIT_AS, CPU affinity, RLIMIT_NOFILE/NPROC."""

    memory_mib: int
    vcpus: int
    nofile: int
    nproc: int


@dataclass
class InstanceRecord:
    """One instance. ``pid`` is its supervisor's, also the id of its process group;
    ``pid_started_at`` (psutil's create time) tells that pid apart from a reused one."""

    provider_id: str
    resource_id: str
    project_id: str
    name: str
    size: str
    image: str
    port: int
    created_at: str
    limits: Limits
    stop_grace_seconds: float
    sandbox: Sandbox = "none"
    bwrap_path: str | None = None
    desired: DesiredState = "running"
    pid: int | None = None
    pid_started_at: float | None = None


def read_record(directory: Path) -> InstanceRecord:
    data = json.loads((directory / RECORD).read_text())
    known = {f.name for f in dataclasses.fields(InstanceRecord)}
    fields = {key: value for key, value in data.items() if key in known}
    fields["limits"] = Limits(**fields["limits"])
    return InstanceRecord(**fields)


def write_record(directory: Path, record: InstanceRecord) -> None:
    """Atomically: a reader (the supervisor, another Lariba process) never sees half a file."""
    temporary = directory / f".{RECORD}.tmp"
    temporary.write_text(json.dumps(dataclasses.asdict(record), indent=2) + "\n")
    os.replace(temporary, directory / RECORD)
