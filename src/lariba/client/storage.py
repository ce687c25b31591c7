"""The calls on buckets and their objects as flows (see ``session``). Object bytes go to
and from presigned URLs, without the bearer token: an upload reads one part of its source
at a time, a download writes the answer as it arrives."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from lariba.client.api import operation
from lariba.client.errors import LaribaError
from lariba.client.models import Bucket, Listing, Operation, StoredObject
from lariba.client.session import Call, Download, Flow, Session, checked

# A path, or a binary file object (read or written from its current position).
Source = str | os.PathLike[str] | BinaryIO
Destination = str | os.PathLike[str] | BinaryIO
# Called with (bytes done, bytes in all) as a transfer goes on.
TransferProgress = Callable[[int, int], None]

DEFAULT_PART_SIZE = 8 * 1024 * 1024


class BucketCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/buckets"

    def list(self) -> Flow[list[Bucket]]:
        items = yield from self._session.all_pages(Call("GET", self._path))
        return [Bucket.from_json(item) for item in items]

    def create(
        self,
        name: str,
        *,
        region: str | None,
        versioning: bool,
        labels: Mapping[str, str] | None,
    ) -> Flow[Operation]:
        body: dict[str, Any] = {
            "name": name,
            "versioning": versioning,
            "labels": dict(labels or {}),
        }
        if region is not None:
            body["region"] = region
        return (yield from operation(self._session, Call("POST", self._path, json=body)))

    def get(self, bucket_id: str) -> Flow[Bucket]:
        response = yield from self._session.request(Call("GET", f"{self._path}/{bucket_id}"))
        return Bucket.from_json(response.json())

    def delete(self, bucket_id: str, *, force: bool) -> Flow[Operation]:
        params = (("force", "true"),) if force else ()
        call = Call("DELETE", f"{self._path}/{bucket_id}", params=params)
        return (yield from operation(self._session, call))


class ObjectCalls:
    def __init__(self, session: Session, project_id: str, bucket_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/buckets/{bucket_id}/objects"

    def list(
        self, *, prefix: str | None, delimiter: str | None, page_size: int | None
    ) -> Flow[Listing]:
        params: tuple[tuple[str, str], ...] = ()
        if prefix:
            params += (("prefix", prefix),)
        if delimiter:
            params += (("delimiter", delimiter),)
        bodies = yield from self._session.pages(
            Call("GET", self._path, params=params), page_size=page_size
        )
        return Listing(
            objects=tuple(
                StoredObject.from_json(item) for body in bodies for item in body["items"]
            ),
            prefixes=tuple(dict.fromkeys(p for body in bodies for p in body["prefixes"])),
        )

    def head(self, key: str) -> Flow[StoredObject]:
        response = yield from self._session.request(
            Call("GET", f"{self._path}/metadata", params=(("key", key),))
        )
        return StoredObject.from_json(response.json())

    def delete(self, key: str) -> Flow[None]:
        yield from self._session.request(Call("DELETE", self._path, params=(("key", key),)))

    def upload(
        self,
        key: str,
        source: Source,
        *,
        content_type: str | None,
        part_size: int,
        on_progress: TransferProgress | None,
    ) -> Flow[StoredObject]:
        """One presigned PUT for a source of up to ``part_size`` bytes, else a multipart
        upload, aborted if any part fails."""
        if part_size < 1:
            raise ValueError("part_size must be at least 1 byte")
        with _reading(source) as file:
            start = file.tell()
            total = file.seek(0, os.SEEK_END) - start
            file.seek(start)
            if total <= part_size:
                yield from self._put(key, _read(file, total), content_type=content_type)
                if on_progress is not None:
                    on_progress(total, total)
                return (yield from self.head(key))
            return (
                yield from self._multipart(
                    key,
                    file,
                    total=total,
                    content_type=content_type,
                    part_size=part_size,
                    on_progress=on_progress,
                )
            )

    def download(
        self, key: str, destination: Destination, *, on_progress: TransferProgress | None
    ) -> Flow[StoredObject]:
        """Streams the object into ``destination``; a path is written whole or not at all."""
        info = yield from self.head(key)
        signed = yield from self._session.request(
            Call("POST", f"{self._path}/presign", json={"key": key, "method": "GET"})
        )
        with writing(destination) as file:
            done = 0

            def write(chunk: bytes) -> None:
                nonlocal done
                file.write(chunk)
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, info.size)

            yield from checked(Download(_presigned(signed.json(), method="GET"), write=write))
        return info

    def _put(self, key: str, data: bytes, *, content_type: str | None) -> Flow[None]:
        body: dict[str, Any] = {"key": key, "method": "PUT", "content_length": len(data)}
        if content_type is not None:
            body["content_type"] = content_type
        signed = yield from self._session.request(Call("POST", f"{self._path}/presign", json=body))
        yield from checked(_presigned(signed.json(), method="PUT", content=data))

    def _multipart(
        self,
        key: str,
        file: BinaryIO,
        *,
        total: int,
        content_type: str | None,
        part_size: int,
        on_progress: TransferProgress | None,
    ) -> Flow[StoredObject]:
        body: dict[str, Any] = {"key": key}
        if content_type is not None:
            body["content_type"] = content_type
        created = yield from self._session.request(Call("POST", f"{self._path}/uploads", json=body))
        upload = f"{self._path}/uploads/{created.json()['upload_id']}"
        try:
            parts: list[dict[str, Any]] = []
            done = 0
            while done < total:
                data = _read(file, min(part_size, total - done))
                number = len(parts) + 1
                signed = yield from self._session.request(
                    Call(
                        "POST",
                        f"{upload}/parts",
                        json={"part_number": number, "content_length": len(data)},
                    )
                )
                sent = yield from checked(_presigned(signed.json(), method="PUT", content=data))
                parts.append({"part_number": number, "etag": sent.headers["ETag"].strip('"')})
                done += len(data)
                if on_progress is not None:
                    on_progress(done, total)
            completed = yield from self._session.request(
                Call("POST", f"{upload}/complete", json={"parts": parts})
            )
        except Exception:
            # The parts stored so far would otherwise count against the quota until the
            # provider expires them; the first failure is the one worth raising.
            with contextlib.suppress(LaribaError):
                yield from self._session.request(Call("DELETE", upload))
            raise
        return StoredObject.from_json(completed.json())


def _presigned(signed: Mapping[str, Any], *, method: str, content: bytes | None = None) -> Call:
    return Call(
        method,
        signed["url"],
        content=content,
        headers=dict(signed.get("headers") or {}),
        authenticated=False,
    )


def _read(file: BinaryIO, size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise ValueError(f"the source ended after {len(data)} of {size} bytes of a part")
    return data


@contextlib.contextmanager
def _reading(source: Source) -> Iterator[BinaryIO]:
    if not isinstance(source, (str, os.PathLike)):
        yield source
        return
    with Path(source).open("rb") as file:
        yield file


@contextlib.contextmanager
def writing(destination: Destination) -> Iterator[BinaryIO]:
    """A path is written under a temporary name, then renamed: a failed download leaves
    what was there before."""
    if not isinstance(destination, (str, os.PathLike)):
        yield destination
        return
    path = Path(destination)
    partial = path.with_name(f".{path.name}.part")
    try:
        with partial.open("wb") as file:
            yield file
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
