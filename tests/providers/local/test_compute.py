"""The local provider with real processes: every instance here is a process group on this
machine, ended by the fixture whatever the test did."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil
import pytest

from lariba.core.settings import Settings
from lariba.providers.base import (
    InstanceSpec,
    InstanceState,
    ObservedInstance,
    PermanentProviderError,
    ProviderNotFound,
)
from lariba.providers.catalog import load_catalog
from lariba.providers.local import LocalCompute, local_compute_enabled
from lariba.providers.local.processes import group_members
from lariba.providers.local.supervisor import CONSOLE_LOG_MAX_BYTES

REGION = "local"
GRACE_SECONDS = 1.0
HAS_BWRAP = shutil.which("bwrap") is not None


def _kill_everything_under(root: Path) -> None:
    """Every process group whose supervisor or sandbox names a directory under ``root``."""
    groups = set()
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if any(str(root) in argument for argument in process.cmdline()):
                groups.add(os.getpgid(process.pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    for group in groups:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(group, os.WNOHANG)


@pytest.fixture(params=["bubblewrap", "none"])
def sandbox(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    if mode == "bubblewrap" and not HAS_BWRAP:
        pytest.skip("bwrap is not installed")
    return mode


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "instances"
    yield path
    _kill_everything_under(path)


def _compute(root: Path, sandbox: str, *, enabled: bool = True) -> LocalCompute:
    return LocalCompute(
        catalog=load_catalog("local"),
        root=root,
        enabled=enabled,
        stop_grace_seconds=GRACE_SECONDS,
        sandbox=sandbox == "bubblewrap",
    )


@pytest.fixture
def compute(root: Path, sandbox: str) -> LocalCompute:
    return _compute(root, sandbox)


def _spec(user_data: str, *, size: str = "nano", image: str = "shell") -> InstanceSpec:
    return InstanceSpec(
        resource_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        name="web-1",
        region=REGION,
        size=size,
        image=image,
        user_data=user_data,
    )


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _console_contains(compute: LocalCompute, provider_id: str, text: str) -> None:
    async def check() -> bool:
        return text in await compute.console_output(region=REGION, provider_id=provider_id)

    try:
        await _eventually(check)
    except AssertionError:
        console = await compute.console_output(region=REGION, provider_id=provider_id)
        raise AssertionError(f"{text!r} not in console {console[-2000:]!r}") from None


async def _state(compute: LocalCompute, provider_id: str) -> InstanceState:
    return (await compute.describe_instance(region=REGION, provider_id=provider_id)).state


def _pid(instance: ObservedInstance) -> int:
    return int(instance.extra["pid"])


async def test_instance_runs_user_data_with_its_id_and_port(compute: LocalCompute) -> None:
    spec = _spec("echo hello from $LARIBA_INSTANCE_ID; echo port=$PORT; exec sleep 1000")
    created = await compute.create_instance(spec)

    assert created.provider_id.startswith("local-")
    assert len(created.provider_id) == len("local-") + 12
    assert created.state is InstanceState.running
    assert created.resource_id == spec.resource_id
    assert created.project_id == spec.project_id
    assert created.private_ip == "127.0.0.1"
    port = created.extra["port"]
    await _console_contains(compute, created.provider_id, f"hello from {spec.resource_id}")
    await _console_contains(compute, created.provider_id, f"port={port}")
    found = await compute.find_instance(region=REGION, resource_id=spec.resource_id)
    assert found is not None
    assert found.provider_id == created.provider_id
    listed = await compute.list_instances(region=REGION)
    assert [i.provider_id for i in listed] == [created.provider_id]


async def test_instance_is_reachable_on_its_port(compute: LocalCompute) -> None:
    created = await compute.create_instance(
        _spec(
            "echo served > index.html; exec python3 -m http.server $PORT --bind 127.0.0.1",
            size="small",
        )
    )
    url = f"http://127.0.0.1:{created.extra['port']}/index.html"

    async def answers() -> bool:
        try:
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
        except OSError:
            return False
        return bool(body == b"served\n")

    await _eventually(answers)


async def test_stop_ends_the_whole_process_group(compute: LocalCompute) -> None:
    created = await compute.create_instance(_spec("sleep 1000 & sleep 1001 & echo started; wait"))
    await _console_contains(compute, created.provider_id, "started")
    group = _pid(created)
    names = [p.name() for p in group_members(group)]
    assert names.count("sleep") == 2

    await compute.stop_instance(region=REGION, provider_id=created.provider_id)

    assert group_members(group) == []
    stopped = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    assert stopped.state is InstanceState.stopped
    assert "pid" not in stopped.extra


async def test_stop_kills_a_script_ignoring_sigterm_after_the_grace_period(
    compute: LocalCompute,
) -> None:
    created = await compute.create_instance(_spec("trap '' TERM; echo trapped; sleep 1000"))
    await _console_contains(compute, created.provider_id, "trapped")
    group = _pid(created)

    began = time.monotonic()
    await compute.stop_instance(region=REGION, provider_id=created.provider_id)

    assert time.monotonic() - began >= GRACE_SECONDS
    assert group_members(group) == []
    assert await _state(compute, created.provider_id) is InstanceState.stopped


async def test_stop_lets_the_script_shut_down_cleanly(compute: LocalCompute) -> None:
    created = await compute.create_instance(
        _spec("trap 'echo goodbye; exit 0' TERM; echo ready; sleep 1000 & wait")
    )
    await _console_contains(compute, created.provider_id, "ready")

    await compute.stop_instance(region=REGION, provider_id=created.provider_id)

    await _console_contains(compute, created.provider_id, "goodbye")


async def test_start_relaunches_and_keeps_earlier_console(compute: LocalCompute) -> None:
    created = await compute.create_instance(_spec("echo boot $$; exec sleep 1000"))
    await _console_contains(compute, created.provider_id, "boot")
    await compute.stop_instance(region=REGION, provider_id=created.provider_id)

    await compute.start_instance(region=REGION, provider_id=created.provider_id)

    started = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    assert started.state is InstanceState.running
    assert _pid(started) != _pid(created)
    assert started.extra["port"] == created.extra["port"]

    async def booted_twice() -> bool:
        console = await compute.console_output(region=REGION, provider_id=created.provider_id)
        return console.count("boot") == 2

    await _eventually(booted_twice)


async def test_reboot_relaunches_the_script(compute: LocalCompute) -> None:
    created = await compute.create_instance(_spec("echo boot; exec sleep 1000"))
    await _console_contains(compute, created.provider_id, "boot")

    await compute.reboot_instance(region=REGION, provider_id=created.provider_id)

    rebooted = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    assert rebooted.state is InstanceState.running
    assert _pid(rebooted) != _pid(created)
    assert not psutil.pid_exists(_pid(created)) or group_members(_pid(created)) == []


async def test_new_provider_object_adopts_running_instances(root: Path, sandbox: str) -> None:
    first = _compute(root, sandbox)
    created = await first.create_instance(_spec("exec sleep 1000"))
    del first
    gc.collect()

    adopted = await _compute(root, sandbox).describe_instance(
        region=REGION, provider_id=created.provider_id
    )

    assert adopted.state is InstanceState.running
    assert _pid(adopted) == _pid(created)


async def test_instances_outlive_the_process_that_created_them(root: Path, sandbox: str) -> None:
    program = (
        "import asyncio, sys, uuid\n"
        "from pathlib import Path\n"
        "from lariba.providers.base import InstanceSpec\n"
        "from lariba.providers.catalog import load_catalog\n"
        "from lariba.providers.local import LocalCompute\n"
        "compute = LocalCompute(catalog=load_catalog('local'), root=Path(sys.argv[1]),\n"
        "    enabled=True, sandbox=sys.argv[2] == 'bubblewrap')\n"
        "spec = InstanceSpec(resource_id=uuid.uuid4(), project_id=uuid.uuid4(), name='x',\n"
        "    region='local', size='nano', image='shell', user_data='exec sleep 1000')\n"
        "print(asyncio.run(compute.create_instance(spec)).provider_id)\n"
    )
    creator = await asyncio.create_subprocess_exec(
        "python", "-c", program, str(root), sandbox, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(creator.communicate(), 30)
    assert creator.returncode == 0
    provider_id = output.decode().strip()

    assert await _state(_compute(root, sandbox), provider_id) is InstanceState.running


async def test_reused_pid_is_reported_stopped_and_never_signalled(
    compute: LocalCompute, root: Path
) -> None:
    created = await compute.create_instance(_spec("exec sleep 1000"))
    await asyncio.sleep(0.1)  # a reused pid starts later: a different create time
    stranger = await asyncio.create_subprocess_exec("sleep", "1000", start_new_session=True)
    try:
        record_path = root / created.provider_id / "instance.json"
        record = json.loads(record_path.read_text())
        # The supervisor is gone (a host restart, say) and its pid now names a stranger.
        supervisor = psutil.Process(record["pid"])
        os.killpg(supervisor.pid, signal.SIGKILL)

        async def supervisor_gone() -> bool:
            with contextlib.suppress(psutil.NoSuchProcess):
                return supervisor.status() == psutil.STATUS_ZOMBIE
            return True

        await _eventually(supervisor_gone)
        record["pid"] = stranger.pid  # alive, but started at another time
        record_path.write_text(json.dumps(record))

        assert await _state(compute, created.provider_id) is InstanceState.stopped
        await compute.stop_instance(region=REGION, provider_id=created.provider_id)
        assert stranger.returncode is None
        assert psutil.Process(stranger.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        stranger.kill()
        await stranger.wait()


async def test_script_that_exits_leaves_the_instance_stopped(compute: LocalCompute) -> None:
    created = await compute.create_instance(_spec("echo done"))

    async def stopped() -> bool:
        return await _state(compute, created.provider_id) is InstanceState.stopped

    await _eventually(stopped)
    await _console_contains(compute, created.provider_id, "done")


async def test_resize_needs_a_stopped_instance_and_applies_the_memory_limit(
    compute: LocalCompute,
) -> None:
    created = await compute.create_instance(_spec("echo limit=$(ulimit -v); exec sleep 1000"))
    await _console_contains(compute, created.provider_id, "limit=262144")
    with pytest.raises(PermanentProviderError):
        await compute.resize_instance(region=REGION, provider_id=created.provider_id, size="large")

    await compute.stop_instance(region=REGION, provider_id=created.provider_id)
    await compute.resize_instance(region=REGION, provider_id=created.provider_id, size="large")
    await compute.start_instance(region=REGION, provider_id=created.provider_id)

    resized = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    assert resized.size == "large"
    await _console_contains(compute, created.provider_id, "limit=2097152")


async def test_size_limits_cpus_open_files_and_processes(compute: LocalCompute) -> None:
    created = await compute.create_instance(
        _spec(
            "echo cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2)"
            " files=$(ulimit -n) procs=$(awk '/Max processes/ {print $3}' /proc/self/limits);"
            " exec sleep 1000"
        )
    )

    first_core = min(os.sched_getaffinity(0))
    await _console_contains(compute, created.provider_id, f"cpus={first_core} files=1024 procs=256")


@pytest.mark.parametrize("sandbox", ["none"])
async def test_instance_that_cannot_start_says_why_in_its_console(
    compute: LocalCompute, root: Path
) -> None:
    created = await compute.create_instance(_spec("echo first boot"))

    async def stopped() -> bool:
        return await _state(compute, created.provider_id) is InstanceState.stopped

    await _eventually(stopped)
    record_path = root / created.provider_id / "instance.json"
    record = json.loads(await asyncio.to_thread(record_path.read_text))
    record.update(sandbox="bubblewrap", bwrap_path="/nonexistent/bwrap")
    await asyncio.to_thread(record_path.write_text, json.dumps(record))

    await compute.start_instance(region=REGION, provider_id=created.provider_id)

    await _console_contains(compute, created.provider_id, "could not start")
    await _eventually(stopped)


async def test_console_log_is_rotated_while_the_script_runs(
    compute: LocalCompute, root: Path
) -> None:
    created = await compute.create_instance(
        _spec("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo LAST-LINE; exec sleep 1000")
    )

    await _console_contains(compute, created.provider_id, "LAST-LINE")

    directory = root / created.provider_id
    logs = [directory / "console.log", directory / "console.log.1"]
    assert all(log.stat().st_size <= CONSOLE_LOG_MAX_BYTES for log in logs)
    console = await compute.console_output(region=REGION, provider_id=created.provider_id)
    assert len(console) <= 64 * 1024
    assert console.endswith("LAST-LINE\n")
    assert await _state(compute, created.provider_id) is InstanceState.running


async def test_terminate_is_idempotent_and_forgets_the_instance(
    compute: LocalCompute, root: Path
) -> None:
    spec = _spec("exec sleep 1000")
    created = await compute.create_instance(spec)
    group = _pid(created)

    await compute.terminate_instance(region=REGION, provider_id=created.provider_id)
    await compute.terminate_instance(region=REGION, provider_id=created.provider_id)

    assert group_members(group) == []
    assert await compute.find_instance(region=REGION, resource_id=spec.resource_id) is None
    assert await compute.list_instances(region=REGION) == []
    assert not (root / created.provider_id).exists()
    with pytest.raises(ProviderNotFound):
        await compute.describe_instance(region=REGION, provider_id=created.provider_id)


@pytest.mark.parametrize("sandbox", ["none"])
async def test_unknown_size_image_region_or_id_are_refused(compute: LocalCompute) -> None:
    with pytest.raises(PermanentProviderError, match="size"):
        await compute.create_instance(_spec("true", size="huge"))
    with pytest.raises(PermanentProviderError, match="image"):
        await compute.create_instance(_spec("true", image="ubuntu"))
    with pytest.raises(PermanentProviderError, match="region"):
        await compute.list_instances(region="us-east-1")
    with pytest.raises(ProviderNotFound):
        await compute.describe_instance(region=REGION, provider_id="local-../../etc")


@pytest.mark.parametrize("sandbox", ["none"])
async def test_disabled_provider_refuses_and_names_the_setting(root: Path, sandbox: str) -> None:
    compute = _compute(root, sandbox, enabled=False)

    with pytest.raises(PermanentProviderError, match="LARIBA_LOCAL_COMPUTE_ENABLED"):
        await compute.create_instance(_spec("true"))
    assert not await asyncio.to_thread(root.exists)


def test_local_compute_is_off_in_production_unless_enabled() -> None:
    production = {"env": "production", "secret_key": "k" * 40, "database_url": "postgresql://x"}
    assert local_compute_enabled(Settings(**production)) is False  # type: ignore[arg-type]
    assert local_compute_enabled(Settings(**production, local_compute_enabled=True))  # type: ignore[arg-type]
    assert local_compute_enabled(Settings(env="development", local_compute_enabled=None)) is True


async def test_sandbox_is_reported(compute: LocalCompute, sandbox: str) -> None:
    created = await compute.create_instance(_spec("exec sleep 1000"))

    assert created.extra["sandbox"] == sandbox


@pytest.mark.skipif(not HAS_BWRAP, reason="bwrap is not installed")
@pytest.mark.parametrize("sandbox", ["bubblewrap"])
async def test_bubblewrap_gives_a_private_tmp_and_a_read_only_host(
    compute: LocalCompute, root: Path
) -> None:
    probe = f"lariba-probe-{uuid.uuid4().hex}"
    created = await compute.create_instance(
        _spec(
            f"echo x > /tmp/{probe} && echo tmp-ok; "
            f"touch /etc/{probe} 2>/dev/null || echo host-read-only; "
            "echo x > written && echo home-ok; exec sleep 1000"
        )
    )

    for line in ("tmp-ok", "host-read-only", "home-ok"):
        await _console_contains(compute, created.provider_id, line)
    assert not await asyncio.to_thread(Path(f"/tmp/{probe}").exists)
    assert not await asyncio.to_thread(Path(f"/etc/{probe}").exists)
    written = root / created.provider_id / "written"
    assert await asyncio.to_thread(written.read_text) == "x\n"


async def test_a_supervisor_its_starter_never_recorded_is_adopted_not_doubled(
    compute: LocalCompute, root: Path
) -> None:
    """A Lariba process killed between starting the supervisor and recording its pid: the
    next start finds that supervisor instead of starting a second one."""
    created = await compute.create_instance(_spec("exec sleep 1000"))
    record_path = root / created.provider_id / "instance.json"
    record = json.loads(record_path.read_text())
    supervisor = record["pid"]
    record["pid"] = record["pid_started_at"] = None  # what the killed starter left
    record_path.write_text(json.dumps(record))

    assert await _state(compute, created.provider_id) is InstanceState.running
    await compute.start_instance(region=REGION, provider_id=created.provider_id)

    adopted = json.loads(record_path.read_text())
    assert adopted["pid"] == supervisor
    supervisors = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(root / created.provider_id) in (p.info["cmdline"] or [])
    ]
    assert [p.pid for p in supervisors] == [supervisor]
    await compute.terminate_instance(region=REGION, provider_id=created.provider_id)
    assert not psutil.pid_exists(supervisor) or (
        psutil.Process(supervisor).status() == psutil.STATUS_ZOMBIE
    )
