"""Receiving an upload: the body keeps streaming in while the disk writes back."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lariba.providers import uploads
from lariba.providers.storage import PutRequest

MIB = 1024 * 1024


async def test_write_back_runs_beside_the_body_not_in_its_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a write-back is stuck on the disk, later batches are still received; the
    object is whole and sealed once every write-back has finished."""
    sync_started = threading.Event()
    disk_released = threading.Event()
    received_during_sync: list[int] = []
    # Per write-back: whether the body moved on while it was held (False: it timed out,
    # the body waited for the disk).
    syncs: list[bool] = []

    def slow_fdatasync(fd: int) -> None:
        sync_started.set()
        syncs.append(disk_released.wait(timeout=5))

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    chunks = [os.urandom(256 * 1024) for _ in range(32)]  # 8 MiB in 256 KiB chunks

    async def body() -> AsyncIterator[bytes]:
        for index, chunk in enumerate(chunks):
            if sync_started.is_set() and not disk_released.is_set():
                received_during_sync.append(index)
                if len(received_during_sync) >= 8:  # two more batches came in meanwhile
                    disk_released.set()
            yield chunk

    data = b"".join(chunks)
    with (tmp_path / "object").open("wb") as sink:
        received = await uploads.receive(
            body(),
            sink,
            request=PutRequest(key="k", content_length=len(data)),
            max_bytes=None,
            sync_every=2 * MIB,
        )
    assert syncs and all(syncs), "the body waited for the disk"
    assert received.size == len(data)
    assert received.md5_hex == hashlib.md5(data).hexdigest()  # noqa: S324 - the ETag
    assert (tmp_path / "object").read_bytes() == data
