"""A stop cut short (the Lariba process doing it killed before the instance's processes
were signalled) leaves an instance that a later stop ends, never one ``stopping`` for
ever that every reconcile pass would wait on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lariba.providers.base import InstanceSpec, InstanceState
from lariba.providers.catalog import load_catalog
from lariba.providers.local import LocalCompute
from lariba.providers.local import compute as local_compute
from tests.providers.local.test_compute import _kill_everything_under

REGION = "local"


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "instances"
    yield path
    _kill_everything_under(path)


async def test_stop_cut_short_before_signalling_is_finished_by_the_next_stop(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute = LocalCompute(
        catalog=load_catalog("local"), root=root, enabled=True, stop_grace_seconds=1.0
    )
    spec = InstanceSpec(
        resource_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        name="web-1",
        region=REGION,
        size="nano",
        image="shell",
        user_data="exec sleep 600\n",
    )
    created = await compute.create_instance(spec)
    assert created.state is InstanceState.running

    def killed(group: int, *, grace_seconds: float) -> None:
        raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(local_compute, "_end_group", killed)
        with pytest.raises(Killed):
            await compute.stop_instance(region=REGION, provider_id=created.provider_id)

    # Nothing was signalled: the instance still runs, and says so.
    cut_short = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    assert cut_short.state is InstanceState.running
    assert cut_short.extra["pid"] == created.extra["pid"]

    await compute.stop_instance(region=REGION, provider_id=created.provider_id)
    stopped = await compute.describe_instance(region=REGION, provider_id=created.provider_id)
    assert stopped.state is InstanceState.stopped
    assert "pid" not in stopped.extra
