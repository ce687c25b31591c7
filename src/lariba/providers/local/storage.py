"""Local buckets: objects as files on this machine, served by Lariba at signed URLs.

Layout under ``root`` (``data_dir/buckets``), one directory per bucket named by its
provider id (``lariba-<resource id hex>``)::

    bucket.json                       resource and project ids, versioning flag
    objects/<h[:2]>/<h>.json          the object's record: key, size, etag, type, metadata,
                                      and the name of its data file (h = sha256 of the key)
    objects/<h[:2]>/<h>.<token>.data  the bytes
    uploads/<upload id>/upload.json   an unfinished multipart upload, with its parts
                                      <nnnnn>.json + <nnnnn>.<token>.data

An object is visible only through its record. A write streams into a ``.tmp`` file in
the final directory (held under an exclusive ``flock`` while written), fsyncs it, renames
it to a new data file, then atomically replaces the record, then removes the data file
the old record named. A crash at any point leaves either the old object or the new one,
plus at most a stray file that no record names; ``check`` removes those whose writer is
gone (its lock is free) and reports records whose data file is missing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lariba.core.failpoints import failpoint
from lariba.providers.base import PermanentProviderError, ProviderNotFound
from lariba.providers.storage import (
    MAX_PARTS,
    MAX_SINGLE_PUT_BYTES,
    MIN_PART_BYTES,
    BucketSpec,
    BucketStats,
    ByteRange,
    Method,
    ObjectBody,
    ObjectInfo,
    ObjectListing,
    ObservedBucket,
    PresignedRequest,
    PutRequest,
    StorageCheck,
    UploadedPart,
    bucket_name,
)
from lariba.providers.uploads import SYNC_EVERY_BYTES, receive

log = structlog.get_logger(__name__)

BUCKET_RECORD = "bucket.json"
UPLOAD_RECORD = "upload.json"
READ_CHUNK_BYTES = 1024 * 1024
_PROVIDER_ID = re.compile(r"^lariba-[0-9a-f]{32}$")
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_TOKEN_BYTES = 8
_STAGED = re.compile(r"^\.[0-9a-f]{16}\.tmp$")
_RECORD_TEMP_SECONDS = 60.0
_META = "meta-"


class SignatureRejected(Exception):
    """A signed URL that is expired, altered or for another request. ``expired`` tells
    the two apart for the error the client sees."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class SignedGrant:
    """What a valid signed URL allows: one method on one key (or one part of an upload),
    with the exact length a PUT must have."""

    method: Method
    provider_id: str
    key: str
    expires: int
    content_length: int | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    upload_id: str | None = None
    part_number: int | None = None


def url_signing_key(master_key: bytes) -> bytes:
    """The key of signed URLs: derived from the master key, for this purpose only."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"lariba-storage-urls-v1"
    ).derive(master_key)


def _now() -> datetime:
    return datetime.now(UTC)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically and durably: readers see the old record or the new one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(_TOKEN_BYTES)}.tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _info(record: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=record["key"],
        size=record["size"],
        etag=record["etag"],
        last_modified=datetime.fromisoformat(record["last_modified"]),
        content_type=record.get("content_type"),
        metadata=record.get("metadata") or {},
        checksum_sha256=record.get("checksum_sha256"),
    )


def _stray(path: Path) -> bool:
    """A temp file nobody writes: an object's is locked by its writer; a record's is
    written in one go, so one older than a minute is left over."""
    if _STAGED.match(path.name):
        return _locked_free(path)
    try:
        return time.time() - path.stat().st_mtime > _RECORD_TEMP_SECONDS
    except FileNotFoundError:
        return False


def _locked_free(path: Path) -> bool:
    """True when no process holds ``path`` under flock: its writer is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


class _Staged:
    """A temp file in ``directory``, locked while this process writes it."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.token = secrets.token_hex(_TOKEN_BYTES)
        self.path = directory / f".{self.token}.tmp"
        self.handle: IO[bytes] = open(self.path, "xb")  # noqa: SIM115 - closed by close()
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)

    def seal(self, name: str) -> Path:
        """fsync, then rename to ``name``; the lock stays until ``close``."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        failpoint("object-written")
        final = self.directory / name
        os.replace(self.path, final)
        self.path = final
        _fsync_dir(self.directory)
        return final

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def close(self) -> None:
        self.handle.close()


class LocalStorage:
    """``StorageProvider`` on this machine's disk; bytes go through Lariba's own signed
    URLs (``/v1/storage/...``), signed with HMAC-SHA256 under ``signing_key``."""

    def __init__(
        self,
        *,
        root: Path,
        signing_key: bytes,
        base_url: str,
        min_part_bytes: int = MIN_PART_BYTES,
    ) -> None:
        self.root = root
        self._key = signing_key
        self._base_url = base_url.rstrip("/")
        self.min_part_bytes = min_part_bytes

    # Buckets

    def _bucket(self, provider_id: str) -> Path:
        if not _PROVIDER_ID.match(provider_id):
            raise ProviderNotFound(f"no bucket {provider_id!r}", code="NoSuchBucket")
        directory = self.root / provider_id
        if not (directory / BUCKET_RECORD).exists():
            raise ProviderNotFound(f"no bucket {provider_id!r}", code="NoSuchBucket")
        return directory

    def _observe(self, provider_id: str, region: str) -> ObservedBucket:
        record = json.loads((self._bucket(provider_id) / BUCKET_RECORD).read_text())
        return ObservedBucket(
            provider_id=provider_id,
            region=record.get("region", region),
            versioning=bool(record.get("versioning")),
            resource_id=uuid.UUID(record["resource_id"]),
            project_id=uuid.UUID(record["project_id"]),
        )

    def _create(self, spec: BucketSpec) -> ObservedBucket:
        provider_id = bucket_name(spec.resource_id)
        directory = self.root / provider_id
        if not (directory / BUCKET_RECORD).exists():
            (directory / "objects").mkdir(parents=True, exist_ok=True)
            (directory / "uploads").mkdir(exist_ok=True)
            _write_json(
                directory / BUCKET_RECORD,
                {
                    "resource_id": str(spec.resource_id),
                    "project_id": str(spec.project_id),
                    "name": spec.name,
                    "region": spec.region,
                    "versioning": spec.versioning,
                    "created_at": _now().isoformat(),
                },
            )
        return self._observe(provider_id, spec.region)

    async def create_bucket(self, spec: BucketSpec) -> ObservedBucket:
        return await asyncio.to_thread(self._create, spec)

    async def find_bucket(self, *, region: str, resource_id: uuid.UUID) -> ObservedBucket | None:
        try:
            return await asyncio.to_thread(self._observe, bucket_name(resource_id), region)
        except ProviderNotFound:
            return None

    async def describe_bucket(self, *, region: str, provider_id: str) -> ObservedBucket:
        return await asyncio.to_thread(self._observe, provider_id, region)

    def _delete_bucket(self, provider_id: str, force: bool) -> None:
        try:
            directory = self._bucket(provider_id)
        except ProviderNotFound:
            return
        if not force and next(self._records(directory), None) is not None:
            raise PermanentProviderError("the bucket is not empty", code="BucketNotEmpty")
        # The record first: a crash part-way leaves no half-bucket that looks alive.
        (directory / BUCKET_RECORD).unlink()
        shutil.rmtree(directory, ignore_errors=True)

    async def delete_bucket(self, *, region: str, provider_id: str, force: bool) -> None:
        await asyncio.to_thread(self._delete_bucket, provider_id, force)

    def _set_versioning(self, provider_id: str, enabled: bool) -> None:
        path = self._bucket(provider_id) / BUCKET_RECORD
        record = json.loads(path.read_text())
        record["versioning"] = enabled
        _write_json(path, record)

    async def set_versioning(self, *, region: str, provider_id: str, enabled: bool) -> None:
        await asyncio.to_thread(self._set_versioning, provider_id, enabled)

    def _stats(self, provider_id: str) -> BucketStats:
        objects = size = 0
        for record in self._records(self._bucket(provider_id)):
            objects += 1
            size += int(record["size"])
        return BucketStats(objects=objects, bytes=size)

    async def bucket_stats(self, *, region: str, provider_id: str) -> BucketStats:
        return await asyncio.to_thread(self._stats, provider_id)

    async def list_buckets(self, *, region: str) -> set[str]:
        def scan() -> set[str]:
            if not self.root.exists():
                return set()
            return {
                entry.name
                for entry in self.root.iterdir()
                if _PROVIDER_ID.match(entry.name) and (entry / BUCKET_RECORD).exists()
            }

        return await asyncio.to_thread(scan)

    # Object records

    @staticmethod
    def _records(directory: Path) -> Iterator[dict[str, Any]]:
        objects = directory / "objects"
        if not objects.exists():
            return
        for shard in objects.iterdir():
            if not shard.is_dir():
                continue
            for path in shard.glob("[0-9a-f]*.json"):
                with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                    yield json.loads(path.read_text())

    @staticmethod
    def _record_path(directory: Path, key: str) -> Path:
        digest = _key_hash(key)
        return directory / "objects" / digest[:2] / f"{digest}.json"

    def _record(self, provider_id: str, key: str) -> tuple[Path, dict[str, Any]]:
        path = self._record_path(self._bucket(provider_id), key)
        try:
            record: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProviderNotFound(f"no object {key!r}", code="NoSuchKey") from None
        return path, record

    def _publish(
        self, directory: Path, staged: _Staged, record: dict[str, Any], key: str
    ) -> ObjectInfo:
        """Makes the staged bytes the object ``key``: the step a crash cannot split."""
        record_path = self._record_path(directory, key)
        digest = record_path.stem
        data = staged.seal(f"{digest}.{staged.token}.data")
        failpoint("object-renamed")
        record = {**record, "key": key, "data": data.name, "last_modified": _now().isoformat()}
        with self._bucket_lock(directory):
            try:
                previous = json.loads(record_path.read_text()).get("data")
            except (FileNotFoundError, json.JSONDecodeError):
                previous = None
            _write_json(record_path, record)
        if previous and previous != data.name:
            with contextlib.suppress(FileNotFoundError):
                (record_path.parent / previous).unlink()
        return _info(record)

    @staticmethod
    @contextlib.contextmanager
    def _bucket_lock(directory: Path) -> Iterator[None]:
        with open(directory / ".lock", "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield

    # Objects

    async def put_object(
        self,
        *,
        region: str,
        provider_id: str,
        request: PutRequest,
        body: AsyncIterator[bytes],
        max_bytes: int | None = None,
    ) -> ObjectInfo:
        directory = await asyncio.to_thread(self._bucket, provider_id)
        limit = MAX_SINGLE_PUT_BYTES if max_bytes is None else min(max_bytes, MAX_SINGLE_PUT_BYTES)
        shard = self._record_path(directory, request.key).parent
        staged = await asyncio.to_thread(_Staged, shard)
        try:
            received = await receive(
                body,
                staged.handle,
                request=request,
                max_bytes=limit,
                sync_every=SYNC_EVERY_BYTES,
            )
            record = {
                "size": received.size,
                "etag": received.md5_hex,
                "content_type": request.content_type,
                "metadata": dict(request.metadata),
                "checksum_sha256": received.sha256_b64,
            }
            return await asyncio.to_thread(self._publish, directory, staged, record, request.key)
        except BaseException:
            # A failed check, a client gone mid-body, a cancelled request: nothing stored.
            await asyncio.to_thread(staged.discard)
            raise
        finally:
            staged.close()

    def _open(self, provider_id: str, key: str) -> tuple[ObjectInfo, IO[bytes]]:
        for _ in range(3):
            path, record = self._record(provider_id, key)
            try:
                return _info(record), open(path.parent / record["data"], "rb")
            except FileNotFoundError:
                continue  # replaced between reading the record and opening its data
        raise ProviderNotFound(f"no object {key!r}", code="NoSuchKey")

    async def get_object(
        self, *, region: str, provider_id: str, key: str, byte_range: ByteRange | None = None
    ) -> ObjectBody:
        info, handle = await asyncio.to_thread(self._open, provider_id, key)
        span: tuple[int, int] | None = None
        first, last = 0, info.size - 1
        if byte_range is not None:
            if byte_range.first >= info.size:
                handle.close()
                raise PermanentProviderError(
                    f"the range starts past the object's {info.size} bytes", code="InvalidRange"
                )
            first = byte_range.first
            if byte_range.last is not None:
                last = min(byte_range.last, info.size - 1)
            span = (first, last)

        async def chunks() -> AsyncIterator[bytes]:
            # The next chunk is read in a thread while the current one is being sent.
            def read(size: int) -> asyncio.Future[bytes]:
                return asyncio.ensure_future(asyncio.to_thread(handle.read, size))

            ahead: asyncio.Future[bytes] | None = None
            try:
                await asyncio.to_thread(handle.seek, first)
                left = last - first + 1
                current = read(min(READ_CHUNK_BYTES, left))
                while True:
                    chunk = await current
                    left -= len(chunk)
                    if not chunk:
                        break
                    if left > 0:
                        ahead = current = read(min(READ_CHUNK_BYTES, left))
                    else:
                        ahead = None
                    yield chunk
                    if ahead is None:
                        break
                ahead = None
            finally:
                if ahead is not None:
                    with contextlib.suppress(Exception):
                        await ahead
                handle.close()

        return ObjectBody(info=info, chunks=chunks(), range=span)

    async def head_object(self, *, region: str, provider_id: str, key: str) -> ObjectInfo:
        _path, record = await asyncio.to_thread(self._record, provider_id, key)
        return _info(record)

    def _list(
        self,
        provider_id: str,
        prefix: str,
        delimiter: str | None,
        token: str | None,
        limit: int,
    ) -> ObjectListing:
        directory = self._bucket(provider_id)
        records = sorted(
            (r for r in self._records(directory) if r["key"].startswith(prefix)),
            key=lambda r: r["key"],
        )
        start_after = _decode_token(token) if token else None
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        last: str | None = None
        for record in records:
            key: str = record["key"]
            if start_after is not None and (
                key <= start_after
                or (start_after.endswith(delimiter or "\0") and key.startswith(start_after))
            ):
                continue
            rolled: str | None = None
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    rolled = key[: cut + len(delimiter)]
            if rolled is not None and prefixes and prefixes[-1] == rolled:
                continue
            if len(objects) + len(prefixes) == limit:
                return ObjectListing(objects, prefixes, _encode_token(last) if last else None)
            if rolled is not None:
                prefixes.append(rolled)
                last = rolled
            else:
                objects.append(_info(record))
                last = key
        return ObjectListing(objects, prefixes, None)

    async def list_objects(
        self,
        *,
        region: str,
        provider_id: str,
        prefix: str = "",
        delimiter: str | None = None,
        token: str | None = None,
        limit: int = 1000,
    ) -> ObjectListing:
        return await asyncio.to_thread(self._list, provider_id, prefix, delimiter, token, limit)

    def _delete(self, provider_id: str, key: str) -> None:
        directory = self._bucket(provider_id)
        record_path = self._record_path(directory, key)
        with self._bucket_lock(directory):
            try:
                data = json.loads(record_path.read_text()).get("data")
            except FileNotFoundError:
                return
            record_path.unlink()
        if data:
            with contextlib.suppress(FileNotFoundError):
                (record_path.parent / data).unlink()

    async def delete_object(self, *, region: str, provider_id: str, key: str) -> None:
        await asyncio.to_thread(self._delete, provider_id, key)

    def _copy(
        self, source_provider_id: str, source_key: str, provider_id: str, key: str
    ) -> ObjectInfo:
        info, source = self._open(source_provider_id, source_key)
        directory = self._bucket(provider_id)
        staged = _Staged(self._record_path(directory, key).parent)
        try:
            with source:
                shutil.copyfileobj(source, staged.handle, READ_CHUNK_BYTES)
            record = {
                "size": info.size,
                "etag": info.etag,
                "content_type": info.content_type,
                "metadata": dict(info.metadata),
                "checksum_sha256": info.checksum_sha256,
            }
            return self._publish(directory, staged, record, key)
        except BaseException:
            staged.discard()
            raise
        finally:
            staged.close()

    async def copy_object(
        self,
        *,
        region: str,
        source_provider_id: str,
        source_key: str,
        provider_id: str,
        key: str,
    ) -> ObjectInfo:
        return await asyncio.to_thread(self._copy, source_provider_id, source_key, provider_id, key)

    # Multipart uploads

    def _upload(self, provider_id: str, key: str, upload_id: str) -> tuple[Path, dict[str, Any]]:
        directory = self._bucket(provider_id)
        if not _UPLOAD_ID.match(upload_id):
            raise ProviderNotFound(f"no upload {upload_id!r}", code="NoSuchUpload")
        upload = directory / "uploads" / upload_id
        try:
            record: dict[str, Any] = json.loads((upload / UPLOAD_RECORD).read_text())
        except FileNotFoundError:
            raise ProviderNotFound(f"no upload {upload_id!r}", code="NoSuchUpload") from None
        if record["key"] != key:
            raise ProviderNotFound(f"no upload {upload_id!r} for {key!r}", code="NoSuchUpload")
        return upload, record

    def _initiate(self, provider_id: str, request: PutRequest) -> str:
        directory = self._bucket(provider_id)
        upload_id = secrets.token_urlsafe(24)
        upload = directory / "uploads" / upload_id
        upload.mkdir(parents=True)
        _write_json(
            upload / UPLOAD_RECORD,
            {
                "key": request.key,
                "content_type": request.content_type,
                "metadata": dict(request.metadata),
                "created_at": _now().isoformat(),
            },
        )
        return upload_id

    async def create_multipart_upload(
        self, *, region: str, provider_id: str, request: PutRequest
    ) -> str:
        return await asyncio.to_thread(self._initiate, provider_id, request)

    async def upload_part(
        self,
        *,
        region: str,
        provider_id: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterator[bytes],
        content_length: int | None = None,
        max_bytes: int | None = None,
    ) -> UploadedPart:
        if not 1 <= part_number <= MAX_PARTS:
            raise PermanentProviderError(
                f"part numbers go from 1 to {MAX_PARTS}", code="InvalidArgument"
            )
        upload, _record = await asyncio.to_thread(self._upload, provider_id, key, upload_id)
        staged = await asyncio.to_thread(_Staged, upload)
        name = f"{part_number:05d}"
        try:
            received = await receive(
                body,
                staged.handle,
                request=PutRequest(key=key, content_length=content_length),
                max_bytes=MAX_SINGLE_PUT_BYTES if max_bytes is None else max_bytes,
                sync_every=SYNC_EVERY_BYTES,
            )

            def publish() -> None:
                data = staged.seal(f"{name}.{staged.token}.data")
                record_path = upload / f"{name}.json"
                try:
                    previous = json.loads(record_path.read_text()).get("data")
                except FileNotFoundError:
                    previous = None
                _write_json(
                    record_path,
                    {"size": received.size, "etag": received.md5_hex, "data": data.name},
                )
                if previous and previous != data.name:
                    with contextlib.suppress(FileNotFoundError):
                        (upload / previous).unlink()

            await asyncio.to_thread(publish)
        except BaseException:
            await asyncio.to_thread(staged.discard)
            raise
        finally:
            staged.close()
        return UploadedPart(part_number=part_number, etag=received.md5_hex)

    def _complete(
        self, provider_id: str, key: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> ObjectInfo:
        upload, record = self._upload(provider_id, key, upload_id)
        if not parts:
            raise PermanentProviderError("a multipart upload needs parts", code="MalformedXML")
        numbers = [part.part_number for part in parts]
        if numbers != sorted(set(numbers)):
            raise PermanentProviderError(
                "parts must be listed in ascending part number order, each once",
                code="InvalidPartOrder",
            )
        stored: list[dict[str, Any]] = []
        for index, part in enumerate(parts):
            try:
                data = json.loads((upload / f"{part.part_number:05d}.json").read_text())
            except FileNotFoundError:
                raise PermanentProviderError(
                    f"part {part.part_number} was not uploaded", code="InvalidPart"
                ) from None
            if data["etag"] != part.etag.strip('"'):
                raise PermanentProviderError(
                    f"part {part.part_number}'s ETag does not match", code="InvalidPart"
                )
            if index < len(parts) - 1 and data["size"] < self.min_part_bytes:
                raise PermanentProviderError(
                    f"part {part.part_number} is smaller than {self.min_part_bytes} bytes "
                    "(only the last part may be)",
                    code="EntityTooSmall",
                )
            stored.append(data)
        directory = self._bucket(provider_id)
        staged = _Staged(self._record_path(directory, key).parent)
        combined = hashlib.md5()  # noqa: S324 - S3's multipart ETag
        size = 0
        try:
            for data in stored:
                with open(upload / data["data"], "rb") as source:
                    shutil.copyfileobj(source, staged.handle, READ_CHUNK_BYTES)
                combined.update(bytes.fromhex(data["etag"]))
                size += int(data["size"])
            info = self._publish(
                directory,
                staged,
                {
                    "size": size,
                    "etag": f"{combined.hexdigest()}-{len(stored)}",
                    "content_type": record.get("content_type"),
                    "metadata": record.get("metadata") or {},
                    "checksum_sha256": None,
                },
                key,
            )
        except BaseException:
            staged.discard()
            raise
        finally:
            staged.close()
        shutil.rmtree(upload, ignore_errors=True)
        return info

    async def complete_multipart_upload(
        self,
        *,
        region: str,
        provider_id: str,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
    ) -> ObjectInfo:
        return await asyncio.to_thread(self._complete, provider_id, key, upload_id, parts)

    def _abort(self, provider_id: str, key: str, upload_id: str) -> None:
        try:
            upload, _record = self._upload(provider_id, key, upload_id)
        except ProviderNotFound:
            return
        shutil.rmtree(upload, ignore_errors=True)

    async def abort_multipart_upload(
        self, *, region: str, provider_id: str, key: str, upload_id: str
    ) -> None:
        await asyncio.to_thread(self._abort, provider_id, key, upload_id)

    # Signed URLs

    def _signature(self, grant: SignedGrant) -> str:
        message = "\n".join(
            (
                "lariba-storage-v1",
                grant.method,
                grant.provider_id,
                grant.key,
                str(grant.expires),
                "" if grant.content_length is None else str(grant.content_length),
                grant.content_type or "",
                json.dumps(dict(sorted(grant.metadata.items()))),
                grant.upload_id or "",
                "" if grant.part_number is None else str(grant.part_number),
            )
        )
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    async def presign(
        self,
        *,
        region: str,
        provider_id: str,
        key: str,
        method: Method,
        expires_in: int,
        content_length: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        upload_id: str | None = None,
        part_number: int | None = None,
    ) -> PresignedRequest:
        """Everything the request may do is in the URL's query, signed: the length, type
        and metadata of an upload are taken from there, not from request headers."""
        await asyncio.to_thread(self._bucket, provider_id)
        putting = method == "PUT"
        grant = SignedGrant(
            method=method,
            provider_id=provider_id,
            key=key,
            expires=int(time.time()) + expires_in,
            content_length=content_length if putting else None,
            content_type=content_type if putting else None,
            metadata=dict(metadata or {}) if putting else {},
            upload_id=upload_id,
            part_number=part_number,
        )
        query = _grant_query(grant)
        query["signature"] = self._signature(grant)
        bucket_id = uuid.UUID(provider_id.removeprefix("lariba-"))
        url = f"{self._base_url}/v1/storage/{bucket_id}/{quote(key, safe='/')}?{urlencode(query)}"
        headers = {} if grant.content_length is None else {"Content-Length": str(content_length)}
        return PresignedRequest(
            url=url,
            method=method,
            headers=headers,
            expires_at=datetime.fromtimestamp(grant.expires, UTC),
        )

    def grant(
        self, *, method: Method, provider_id: str, key: str, query: Mapping[str, str]
    ) -> SignedGrant:
        """What the signed URL with this ``query`` allows for ``method`` on ``key``;
        SignatureRejected when it was not made by ``presign`` with this key, for this
        exact request, or has expired. Compared in constant time."""
        try:
            expires = int(query["expires"])
            signature = query["signature"]
            length = query.get("content_length")
            part = query.get("part_number")
            grant = SignedGrant(
                method=method,
                provider_id=provider_id,
                key=key,
                expires=expires,
                content_length=int(length) if length is not None else None,
                content_type=query.get("content_type"),
                metadata={
                    name.removeprefix(_META): value
                    for name, value in query.items()
                    if name.startswith(_META)
                },
                upload_id=query.get("upload_id"),
                part_number=int(part) if part is not None else None,
            )
        except (KeyError, ValueError):
            raise SignatureRejected(
                "Not a signed URL: expires and signature are required."
            ) from None
        expected = self._signature(grant)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise SignatureRejected(
                "The signature does not match this request (the method, bucket, key and "
                "every query parameter are signed)."
            )
        if grant.expires < int(time.time()):
            raise SignatureRejected("The signed URL has expired.", expired=True)
        return grant

    # Recovery

    async def check(self) -> StorageCheck:
        return await asyncio.to_thread(self.check_now)

    def check_now(self) -> StorageCheck:
        """Removes files no record names whose writer is gone (temp files of uploads cut
        off by a crash or a client that went away), and reports records whose data is
        missing. Safe while uploads run: a file being written is locked by its writer."""
        report = StorageCheck()
        if not self.root.exists():
            return report
        for bucket in self.root.iterdir():
            if not (bucket / BUCKET_RECORD).exists():
                continue
            for directory in self._data_directories(bucket):
                self._check_directory(directory, report)
        if not report.clean:
            log.warning(
                "storage_drift",
                temp_files_removed=report.temp_files_removed,
                orphan_data_removed=report.orphan_data_removed,
                missing_data=report.missing_data[:20],
            )
        return report

    @staticmethod
    def _data_directories(bucket: Path) -> Iterator[Path]:
        for parent in (bucket / "objects", bucket / "uploads"):
            if parent.exists():
                yield from (entry for entry in parent.iterdir() if entry.is_dir())

    @staticmethod
    def _check_directory(directory: Path, report: StorageCheck) -> None:
        referenced: set[str] = set()
        for record_path in directory.glob("[0-9a-f]*.json"):
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                record = json.loads(record_path.read_text())
                data = record.get("data")
                if data:
                    referenced.add(data)
                    if not (directory / data).exists():
                        report.missing_data.append(str(record.get("key", record_path.name)))
        for path in directory.iterdir():
            name = path.name
            if name.endswith(".tmp") and _stray(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    report.temp_files_removed += 1
            elif name.endswith(".data") and name not in referenced and _locked_free(path):
                # Re-read the records: a writer may have published it since the scan.
                if any(
                    json.loads(p.read_text()).get("data") == name
                    for p in directory.glob("[0-9a-f]*.json")
                ):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    report.orphan_data_removed += 1


def _grant_query(grant: SignedGrant) -> dict[str, str]:
    query = {"expires": str(grant.expires)}
    if grant.content_length is not None:
        query["content_length"] = str(grant.content_length)
    if grant.content_type:
        query["content_type"] = grant.content_type
    for name, value in sorted(grant.metadata.items()):
        query[f"{_META}{name}"] = value
    if grant.upload_id is not None:
        query["upload_id"] = grant.upload_id
    if grant.part_number is not None:
        query["part_number"] = str(grant.part_number)
    return query


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise PermanentProviderError("not a continuation token", code="InvalidArgument") from None
