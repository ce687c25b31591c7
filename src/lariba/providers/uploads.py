"""Receiving an object's bytes from a stream into a file: bounded memory, sizes and
checksums checked on the way, shared by the storage providers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from lariba.providers.base import PermanentProviderError
from lariba.providers.storage import PutRequest

# Bytes gathered before one write (off the event loop): few thread hops, little memory.
BATCH_BYTES = 1024 * 1024
SYNC_EVERY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    size: int
    md5_hex: str
    sha256_b64: str | None


def _digest(value: str, *, length: int, header: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != length:
        raise PermanentProviderError(f"{header} is not a base64 digest", code="InvalidDigest")
    return raw


async def receive(
    body: AsyncIterator[bytes],
    sink: IO[bytes],
    *,
    request: PutRequest,
    max_bytes: int | None,
    sync_every: int | None = None,
) -> Received:
    """Writes ``body`` to ``sink``; raises the contract's error (and the caller discards
    the file) when it is longer than allowed or declared, shorter than declared, or does
    not match a checksum the client sent. ``sync_every``: bytes after which ``sink`` (a
    real file) is written back to disk while the body still streams in."""
    want_md5 = (
        _digest(request.content_md5, length=16, header="Content-MD5")
        if request.content_md5
        else None
    )
    want_sha = (
        _digest(request.checksum_sha256, length=32, header="x-amz-checksum-sha256")
        if request.checksum_sha256
        else None
    )
    declared = request.content_length
    limit = max_bytes
    if declared is not None:
        if limit is not None and declared > limit:
            raise PermanentProviderError(
                f"{declared} bytes is more than the {limit} allowed", code="EntityTooLarge"
            )
        limit = declared
    md5 = hashlib.md5()  # noqa: S324 - S3's ETag, not a security measure
    sha = hashlib.sha256() if want_sha is not None else None
    size = 0
    batch: list[bytes] = []
    batched = 0

    written = synced = 0
    # The write-back in progress: the disk catches up while the body keeps streaming in.
    syncing: asyncio.Future[None] | None = None

    def digest(data: bytes) -> None:
        md5.update(data)
        if sha is not None:
            sha.update(data)

    def write(data: bytes) -> None:
        nonlocal written
        sink.write(data)
        written += len(data)

    async def flush(chunks: list[bytes]) -> None:
        nonlocal syncing, synced
        # Hashing and writing release the GIL: side by side, in two threads.
        data = b"".join(chunks)
        await asyncio.gather(asyncio.to_thread(digest, data), asyncio.to_thread(write, data))
        if sync_every is None or written - synced < sync_every:
            return
        if syncing is not None:
            if not syncing.done():
                return  # the disk is still busy with the last one; the next batch asks again
            await syncing  # its error, if it had one
        # Write back as we go, so the fsync that seals the object has little left. In a
        # thread of its own, not waited for: waiting stalled the socket once per sync.
        sink.flush()
        synced = written
        syncing = asyncio.ensure_future(asyncio.to_thread(os.fdatasync, sink.fileno()))

    # One batch is hashed and written while the next is received.
    writing: asyncio.Future[None] | None = None
    try:
        async for chunk in body:
            if not chunk:
                continue
            size += len(chunk)
            if limit is not None and size > limit:
                raise PermanentProviderError(
                    f"the body is longer than the {limit} bytes allowed", code="EntityTooLarge"
                )
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BATCH_BYTES:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(flush(batch))
                batch, batched = [], 0
        if writing is not None:
            await writing
        if batch:
            await flush(batch)
    finally:
        for pending in (writing, syncing):
            if pending is not None and not pending.done():
                await asyncio.wait([pending])
    if syncing is not None:
        await syncing
    if declared is not None and size != declared:
        raise PermanentProviderError(
            f"the body ended after {size} of {declared} bytes", code="IncompleteBody"
        )
    if want_md5 is not None and md5.digest() != want_md5:
        raise PermanentProviderError("Content-MD5 does not match the body", code="BadDigest")
    sha_b64 = None
    if sha is not None:
        if sha.digest() != want_sha:
            raise PermanentProviderError(
                "x-amz-checksum-sha256 does not match the body", code="BadDigest"
            )
        sha_b64 = base64.b64encode(sha.digest()).decode()
    return Received(size=size, md5_hex=md5.hexdigest(), sha256_b64=sha_b64)
