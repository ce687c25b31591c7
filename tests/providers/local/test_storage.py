"""The local storage provider on its own: listing, overwrites, signed URLs, and what a
process killed mid-write leaves behind (nothing visible; nothing after the check)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lariba.providers.base import PermanentProviderError, ProviderNotFound
from lariba.providers.local.storage import LocalStorage, SignatureRejected, url_signing_key
from lariba.providers.storage import BucketSpec, ByteRange, PutRequest

REGION = "local-1"
KEY = b"k" * 32


def storage(root: Path) -> LocalStorage:
    return LocalStorage(root=root, signing_key=KEY, base_url="http://lariba.test", min_part_bytes=4)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def bucket(store: LocalStorage) -> str:
    observed = await store.create_bucket(
        BucketSpec(resource_id=uuid.uuid4(), project_id=uuid.uuid4(), name="b", region=REGION)
    )
    return observed.provider_id


async def put(store: LocalStorage, provider_id: str, key: str, data: bytes) -> None:
    await store.put_object(
        region=REGION,
        provider_id=provider_id,
        request=PutRequest(key=key, content_length=len(data)),
        body=chunks(data[: len(data) // 2], data[len(data) // 2 :]),
    )


async def read(store: LocalStorage, provider_id: str, key: str, **kw: object) -> bytes:
    body = await store.get_object(region=REGION, provider_id=provider_id, key=key, **kw)  # type: ignore[arg-type]
    return b"".join([chunk async for chunk in body.chunks])


def files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".lock"
    )


async def test_create_is_idempotent_and_listing_pages_with_delimiter(tmp_path: Path) -> None:
    store = storage(tmp_path)
    spec = BucketSpec(resource_id=uuid.uuid4(), project_id=uuid.uuid4(), name="b", region=REGION)
    first = await store.create_bucket(spec)
    again = await store.create_bucket(spec)
    assert first == again
    assert first.resource_id == spec.resource_id
    pid = first.provider_id
    keys = ["a", "a/b", "a/c/d", "a/c/e", "a-b", "b", "é/x"]
    for key in keys:
        await put(store, pid, key, key.encode())
    listed = await store.list_objects(region=REGION, provider_id=pid)
    assert [o.key for o in listed.objects] == sorted(keys)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        pages += 1
        page = await store.list_objects(
            region=REGION, provider_id=pid, delimiter="/", token=token, limit=2
        )
        seen += [o.key for o in page.objects] + list(page.prefixes)
        token = page.next_token
        if token is None:
            break
    assert (sorted(seen), pages) == (["a", "a-b", "a/", "b", "é/"], 3)
    inner = await store.list_objects(region=REGION, provider_id=pid, prefix="a/", delimiter="/")
    assert ([o.key for o in inner.objects], list(inner.prefixes)) == (["a/b"], ["a/c/"])
    stats = await store.bucket_stats(region=REGION, provider_id=pid)
    assert (stats.objects, stats.bytes) == (7, sum(len(k.encode()) for k in keys))
    with pytest.raises(PermanentProviderError) as refused:
        await store.delete_bucket(region=REGION, provider_id=pid, force=False)
    assert refused.value.code == "BucketNotEmpty"
    await store.delete_bucket(region=REGION, provider_id=pid, force=True)
    await store.delete_bucket(region=REGION, provider_id=pid, force=True)
    assert await store.find_bucket(region=REGION, resource_id=spec.resource_id) is None


async def test_overwrite_range_and_checks(tmp_path: Path) -> None:
    store = storage(tmp_path)
    pid = await bucket(store)
    await put(store, pid, "k", b"0123456789")
    await put(store, pid, "k", b"abcdefghij")
    assert await read(store, pid, "k") == b"abcdefghij"
    assert await read(store, pid, "k", byte_range=ByteRange(2, 4)) == b"cde"
    assert await read(store, pid, "k", byte_range=ByteRange(7)) == b"hij"
    with pytest.raises(PermanentProviderError) as past:
        await store.get_object(region=REGION, provider_id=pid, key="k", byte_range=ByteRange(10))
    assert past.value.code == "InvalidRange"
    # One record, one data file: the overwritten bytes are gone.
    assert len([f for f in files(tmp_path) if f.endswith(".data")]) == 1
    for request, code in (
        (PutRequest(key="x", content_length=3), "EntityTooLarge"),
        (PutRequest(key="x", content_length=5), "IncompleteBody"),
        (PutRequest(key="x", content_md5="AAAAAAAAAAAAAAAAAAAAAA=="), "BadDigest"),
        (PutRequest(key="x", content_md5="nope"), "InvalidDigest"),
    ):
        with pytest.raises(PermanentProviderError) as failed:
            await store.put_object(
                region=REGION, provider_id=pid, request=request, body=chunks(b"abcd")
            )
        assert failed.value.code == code
    with pytest.raises(ProviderNotFound):
        await store.head_object(region=REGION, provider_id=pid, key="x")
    assert not [f for f in files(tmp_path) if f.endswith(".tmp")]
    assert (await store.check()).clean


async def test_signed_urls_bind_everything_and_expire(tmp_path: Path) -> None:
    store = storage(tmp_path)
    pid = await bucket(store)
    signed = await store.presign(
        region=REGION,
        provider_id=pid,
        key="a b/c.txt",
        method="PUT",
        expires_in=60,
        content_length=5,
        content_type="text/plain",
        metadata={"origin": "x"},
    )
    assert signed.url.startswith(f"http://lariba.test/v1/storage/{uuid.UUID(pid[7:])}/a%20b/c.txt?")
    query = dict(pair.split("=", 1) for pair in signed.url.split("?", 1)[1].split("&"))
    query = {k: v.replace("%2F", "/").replace("+", " ") for k, v in query.items()}
    grant = store.grant(method="PUT", provider_id=pid, key="a b/c.txt", query=query)
    assert (grant.content_length, grant.content_type, dict(grant.metadata)) == (
        5,
        "text/plain",
        {"origin": "x"},
    )
    for method, key, changes in (
        ("GET", "a b/c.txt", {}),
        ("PUT", "a b/other.txt", {}),
        ("PUT", "a b/c.txt", {"content_length": "6"}),
        ("PUT", "a b/c.txt", {"meta-origin": "y"}),
        ("PUT", "a b/c.txt", {"meta-extra": "y"}),
        ("PUT", "a b/c.txt", {"signature": "0" * 64}),
        ("PUT", "a b/c.txt", {"expires": str(int(query["expires"]) + 10)}),
    ):
        with pytest.raises(SignatureRejected) as rejected:
            store.grant(method=method, provider_id=pid, key=key, query={**query, **changes})  # type: ignore[arg-type]
        assert not rejected.value.expired
    other = LocalStorage(
        root=tmp_path, signing_key=url_signing_key(b"another master key"), base_url="x"
    )
    with pytest.raises(SignatureRejected):
        other.grant(method="PUT", provider_id=pid, key="a b/c.txt", query=query)
    soon = await store.presign(region=REGION, provider_id=pid, key="k", method="GET", expires_in=1)
    expired_query = dict(pair.split("=", 1) for pair in soon.url.split("?", 1)[1].split("&"))
    await asyncio.sleep(2.1)
    with pytest.raises(SignatureRejected) as late:
        store.grant(method="GET", provider_id=pid, key="k", query=expired_query)
    assert late.value.expired


async def test_multipart_order_sizes_and_etags(tmp_path: Path) -> None:
    store = storage(tmp_path)
    pid = await bucket(store)
    upload = await store.create_multipart_upload(
        region=REGION, provider_id=pid, request=PutRequest(key="big", content_type="x/y")
    )
    parts = []
    for number, data in ((1, b"aaaa"), (2, b"bb"), (3, b"c")):
        parts.append(
            await store.upload_part(
                region=REGION,
                provider_id=pid,
                key="big",
                upload_id=upload,
                part_number=number,
                body=chunks(data),
                content_length=len(data),
            )
        )
    for wrong, code in (
        ([parts[1], parts[0]], "InvalidPartOrder"),
        ([parts[0], parts[0]], "InvalidPartOrder"),
        ([parts[0], parts[1], parts[2]], "EntityTooSmall"),
        ([parts[0], type(parts[2])(part_number=3, etag="0" * 32)], "InvalidPart"),
        ([parts[0], type(parts[2])(part_number=4, etag="0" * 32)], "InvalidPart"),
    ):
        with pytest.raises(PermanentProviderError) as refused:
            await store.complete_multipart_upload(
                region=REGION, provider_id=pid, key="big", upload_id=upload, parts=wrong
            )
        assert refused.value.code == code
    with pytest.raises(ProviderNotFound):
        await store.head_object(region=REGION, provider_id=pid, key="big")
    with pytest.raises(ProviderNotFound):
        await store.complete_multipart_upload(
            region=REGION, provider_id=pid, key="other", upload_id=upload, parts=[parts[0]]
        )
    info = await store.complete_multipart_upload(
        region=REGION, provider_id=pid, key="big", upload_id=upload, parts=[parts[0], parts[2]]
    )
    assert (info.size, info.content_type) == (5, "x/y")
    assert info.etag.endswith("-2")
    assert await read(store, pid, "big") == b"aaaac"
    assert not any("uploads/" in f for f in files(tmp_path))


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from lariba.providers.local.storage import LocalStorage
    from lariba.providers.storage import PutRequest

    async def body():
        for _ in range(4):
            yield b"n" * 1000

    async def main():
        store = LocalStorage(root=Path(sys.argv[1]), signing_key=b"k", base_url="x")
        await store.put_object(
            region="local-1", provider_id=sys.argv[2],
            request=PutRequest(key="k", content_length=4000), body=body(),
        )

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("point", ["object-written", "object-renamed"])
async def test_process_killed_mid_write_leaves_old_object_and_no_stray_file(
    tmp_path: Path, point: str
) -> None:
    store = storage(tmp_path)
    pid = await bucket(store)
    await put(store, pid, "k", b"old bytes")
    before = files(tmp_path)
    killed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _WRITER, str(tmp_path), pid],
        env={**os.environ, "LARIBA_FAILPOINTS": point},
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr.decode()
    # The writer died after its bytes hit the disk: a file nobody names is left ...
    assert len(files(tmp_path)) == len(before) + 1
    assert await read(store, pid, "k") == b"old bytes"
    listing = await store.list_objects(region=REGION, provider_id=pid)
    assert [(o.key, o.size) for o in listing.objects] == [("k", 9)]
    # ... and the check removes it.
    report = await store.check()
    if point == "object-written":
        assert (report.temp_files_removed, report.orphan_data_removed) == (1, 0)
    else:
        assert (report.temp_files_removed, report.orphan_data_removed) == (0, 1)
    assert files(tmp_path) == before
    assert (await store.check()).clean


async def test_check_leaves_uploads_in_progress_alone(tmp_path: Path) -> None:
    store = storage(tmp_path)
    pid = await bucket(store)
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first half "
        await release.wait()
        yield b"second half"

    writing = asyncio.create_task(
        store.put_object(region=REGION, provider_id=pid, request=PutRequest(key="k"), body=slow())
    )
    await asyncio.sleep(0.2)
    assert (await store.check()).clean
    release.set()
    info = await writing
    assert info.size == 22
    [data] = [f for f in files(tmp_path) if f.endswith(".data")]
    await asyncio.to_thread((tmp_path / data).unlink)
    report = await store.check()
    assert report.missing_data == ["k"]
