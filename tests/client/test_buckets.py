"""The client drives buckets and their objects against a real server: uploads in one PUT
and in parts, byte-identical downloads, listings by prefix and delimiter, an upload that
fails midway leaving nothing behind, and typed errors for what does not exist."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest

from lariba.client import AsyncClient, Bucket, Client, Conflict, NotFound, StoredObject
from tests.client.conftest import Account
from tests.fixtures.console import ConsoleServer

MIB = 1024 * 1024


def _bucket(client: Client, name: str = "sdk-files") -> tuple[str, Bucket]:
    project = client.projects.create("storage")
    buckets = client.buckets(project.id)
    created = buckets.create(name, labels={"env": "test"})
    client.operations(project.id).wait(created, timeout=60, poll=0.2)
    return project.id, buckets.get(created.resource_id)


def _uploads_dir(server: ConsoleServer, bucket_id: str) -> Path:
    return server.data_dir / "buckets" / f"lariba-{uuid.UUID(bucket_id).hex}" / "uploads"


def test_create_bucket_and_wait_until_available(
    client: Client, console_server: ConsoleServer
) -> None:
    project_id, bucket = _bucket(client)

    assert bucket.name == "sdk-files"
    assert bucket.status == "available"
    assert bucket.labels == {"env": "test"}
    assert not bucket.versioning
    assert bucket.bytes == 0
    assert [b.id for b in client.buckets(project_id).list()] == [bucket.id]
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        body = api.get(f"/v1/projects/{project_id}/buckets/{bucket.id}").json()
    assert body["status"] == "available"
    assert body["name"] == "sdk-files"


def test_small_and_multipart_uploads_download_byte_identical(
    client: Client, console_server: ConsoleServer, tmp_path: Path
) -> None:
    project_id, bucket = _bucket(client)
    objects = client.objects(project_id, bucket.id)
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello, bucket\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 * MIB // 2))
    progress: list[tuple[int, int]] = []

    one = objects.upload("notes/small.txt", small, content_type="text/plain")
    parts = objects.upload(
        "data/big.bin",
        big,
        part_size=MIB,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert one.size == small.stat().st_size
    assert one.content_type == "text/plain"
    assert parts.size == big.stat().st_size
    assert parts.etag.endswith("-3")
    size = big.stat().st_size
    assert progress == [(MIB, size), (2 * MIB, size), (size, size)]
    assert objects.head("notes/small.txt") == one
    assert objects.head("data/big.bin").size == big.stat().st_size

    fetched: list[tuple[int, int]] = []
    objects.download(
        "data/big.bin",
        tmp_path / "big.copy",
        on_progress=lambda done, total: fetched.append((done, total)),
    )
    sink = io.BytesIO()
    objects.download("notes/small.txt", sink)

    assert (tmp_path / "big.copy").read_bytes() == big.read_bytes()
    assert sink.getvalue() == small.read_bytes()
    assert fetched[-1] == (big.stat().st_size, big.stat().st_size)
    assert not list(tmp_path.glob(".*.part"))
    assert client.buckets(project_id).get(bucket.id).bytes == one.size + parts.size
    assert client.tokens is not None
    with console_server.api(client.tokens.access_token) as api:
        listed = api.get(f"/v1/projects/{project_id}/buckets/{bucket.id}/objects").json()
    assert [(o["key"], o["size"]) for o in listed["items"]] == [
        ("data/big.bin", big.stat().st_size),
        ("notes/small.txt", small.stat().st_size),
    ]


def test_list_by_prefix_and_delimiter_follows_every_page(client: Client) -> None:
    project_id, bucket = _bucket(client)
    objects = client.objects(project_id, bucket.id)
    keys = ["a.txt", "logs/1.txt", "logs/2.txt", "logs/old/3.txt", "media/x.png"]
    for key in keys:
        objects.upload(key, io.BytesIO(key.encode()))

    everything = objects.list(page_size=2)
    top = objects.list(delimiter="/", page_size=1)
    logs = objects.list("logs/", "/")

    assert [o.key for o in everything] == keys
    assert all(isinstance(o, StoredObject) for o in everything)
    assert [o.key for o in top] == ["a.txt"]
    assert top.prefixes == ("logs/", "media/")
    assert [o.key for o in logs] == ["logs/1.txt", "logs/2.txt"]
    assert logs.prefixes == ("logs/old/",)

    objects.delete("logs/1.txt")
    objects.delete("logs/1.txt")  # a missing key: nothing to do

    assert [o.key for o in objects.list("logs/")] == ["logs/2.txt", "logs/old/3.txt"]


class _FailingSecondPart(io.BytesIO):
    """A file whose second part cannot be read, as a disk or network share that fails."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads += 1
        if self.reads == 2:
            raise OSError("the disk went away")
        return super().read(size)


def test_upload_failing_midway_is_aborted_and_stores_nothing(
    client: Client, console_server: ConsoleServer
) -> None:
    project_id, bucket = _bucket(client)
    objects = client.objects(project_id, bucket.id)
    progress: list[tuple[int, int]] = []

    with pytest.raises(OSError, match="the disk went away"):
        objects.upload(
            "half.bin",
            _FailingSecondPart(os.urandom(5 * MIB // 2)),
            part_size=MIB,
            on_progress=lambda done, total: progress.append((done, total)),
        )

    assert progress == [(MIB, 5 * MIB // 2)]  # the first part was stored
    assert list(_uploads_dir(console_server, bucket.id).iterdir()) == []
    assert list(objects.list()) == []
    with pytest.raises(NotFound) as raised:
        objects.head("half.bin")
    assert raised.value.code == "object_not_found"


def test_unknown_bucket_and_object_are_not_found(client: Client, tmp_path: Path) -> None:
    project_id, bucket = _bucket(client)
    unknown = str(uuid.uuid4())
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    with pytest.raises(NotFound) as no_bucket:
        client.buckets(project_id).get(unknown)
    with pytest.raises(NotFound) as no_bucket_objects:
        client.objects(project_id, unknown).list()
    with pytest.raises(NotFound) as no_object:
        client.objects(project_id, bucket.id).download("missing.txt", downloads / "missing.txt")

    assert no_bucket.value.code == "bucket_not_found"
    assert unknown in no_bucket.value.detail
    assert no_bucket_objects.value.code == "bucket_not_found"
    assert no_object.value.code == "object_not_found"
    assert not list(downloads.iterdir())


def test_delete_bucket_needs_force_while_it_holds_objects(client: Client) -> None:
    project_id, bucket = _bucket(client)
    client.objects(project_id, bucket.id).upload("keep.txt", io.BytesIO(b"kept"))
    buckets = client.buckets(project_id)

    with pytest.raises(Conflict) as raised:
        buckets.delete(bucket.id)
    deleted = client.operations(project_id).wait(
        buckets.delete(bucket.id, force=True), timeout=60, poll=0.2
    )

    assert raised.value.code == "bucket_not_empty"
    assert deleted.type == "delete"
    assert buckets.list() == []
    assert buckets.get(bucket.id).status == "deleted"


async def test_async_client_uploads_in_parts_and_downloads(
    console_server: ConsoleServer, account: Account
) -> None:
    data = os.urandom(3 * MIB // 2)
    async with AsyncClient(
        console_server.url, email=account.email, password=account.password
    ) as client:
        project = await client.projects.create("async-storage")
        created = await client.buckets(project.id).create("sdk-async")
        await client.operations(project.id).wait(created, timeout=60, poll=0.2)
        objects = client.objects(project.id, created.resource_id)

        stored = await objects.upload("blob.bin", io.BytesIO(data), part_size=MIB)
        sink = io.BytesIO()
        fetched = await objects.download("blob.bin", sink)
        listing = await objects.list()

    assert stored.size == len(data)
    assert stored.etag.endswith("-2")
    assert fetched.size == len(data)
    assert sink.getvalue() == data
    assert [o.key for o in listing] == ["blob.bin"]
