"""The provider contract's storage part: buckets and their objects.

Buckets are addressed by region and the provider's bucket name, which is derived from
Lariba's resource id (``bucket_name``), so a create retried after a crash finds the
bucket it made. Users' bucket names are Lariba's only. Object bytes never pass through
the cloud service's JSON API: clients send and fetch them at presigned URLs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

# S3's limits, kept by every provider.
MAX_KEY_BYTES = 1024
MAX_PARTS = 10_000
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_OBJECT_BYTES = 5 * 1024**4
MAX_SINGLE_PUT_BYTES = 5 * 1024**3
MAX_PART_BYTES = 5 * 1024**3
MAX_METADATA_BYTES = 2048
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

Method = Literal["GET", "PUT"]

_METADATA_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")


def bucket_name(resource_id: uuid.UUID) -> str:
    """The provider's name of a bucket: S3-valid, deterministic, and telling Lariba's
    buckets apart from anything else in the account."""
    return f"lariba-{resource_id.hex}"


def key_problem(key: str) -> str | None:
    """Why ``key`` is refused, or None. Stricter than S3 on purpose: keys become paths
    on the local provider, and ``..`` segments or a leading ``/`` confuse every tool."""
    encoded = key.encode("utf-8", errors="surrogatepass")
    if not key:
        return "the key is empty"
    if len(encoded) > MAX_KEY_BYTES:
        return f"the key is longer than {MAX_KEY_BYTES} bytes (UTF-8)"
    if "\x00" in key:
        return "the key contains a NUL character"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        return "the key contains a control character"
    if key.startswith("/"):
        return "the key starts with '/'"
    if any(segment in (".", "..") for segment in key.split("/")):
        return "the key has a '.' or '..' segment"
    try:
        encoded.decode("utf-8")
    except UnicodeDecodeError:
        return "the key is not valid UTF-8"
    return None


def metadata_problem(metadata: Mapping[str, str]) -> str | None:
    """Why user metadata is refused (S3: lowercase names, 2 KiB in all), or None."""
    size = 0
    for name, value in metadata.items():
        if not _METADATA_KEY.match(name):
            return f"metadata name {name!r}: lowercase letters, digits and hyphens"
        if not value.isascii() or any(ord(c) < 0x20 for c in value):
            return f"metadata {name!r}: printable ASCII only"
        size += len(name) + len(value)
    if size > MAX_METADATA_BYTES:
        return f"metadata is larger than {MAX_METADATA_BYTES} bytes"
    return None


@dataclass(frozen=True)
class BucketSpec:
    resource_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    region: str
    versioning: bool = False


@dataclass(frozen=True)
class ObservedBucket:
    provider_id: str
    region: str
    versioning: bool
    resource_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None


@dataclass(frozen=True)
class BucketStats:
    """Current objects and their bytes (parts of unfinished uploads not included)."""

    objects: int
    bytes: int


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    checksum_sha256: str | None = None


@dataclass(frozen=True)
class ObjectListing:
    """One page of keys in order; ``prefixes`` are the common prefixes a delimiter
    rolled up (S3's ``CommonPrefixes``). ``next_token``: pass it back for the next page."""

    objects: Sequence[ObjectInfo]
    prefixes: Sequence[str]
    next_token: str | None


@dataclass(frozen=True)
class ByteRange:
    """Inclusive, as in HTTP: ``first`` to ``last`` (None: to the end)."""

    first: int
    last: int | None = None


@dataclass
class ObjectBody:
    """An object's bytes (or the ``range`` of them), to be read once as a stream."""

    info: ObjectInfo
    chunks: AsyncIterator[bytes]
    range: tuple[int, int] | None = None  # inclusive first and last byte sent


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    etag: str


@dataclass(frozen=True)
class PresignedRequest:
    """A request anyone holding it may make until ``expires_at``: send ``headers`` as
    given (they are part of the signature)."""

    url: str
    method: Method
    headers: Mapping[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class PutRequest:
    """What is known of an upload before its bytes: declared sizes and checksums are
    checked while the bytes stream in, and a mismatch stores nothing."""

    key: str
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_length: int | None = None
    content_md5: str | None = None  # base64, as in the Content-MD5 header
    checksum_sha256: str | None = None  # base64, as in x-amz-checksum-sha256


@dataclass
class StorageCheck:
    """What ``check`` found and repaired."""

    temp_files_removed: int = 0
    orphan_data_removed: int = 0
    missing_data: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.temp_files_removed or self.orphan_data_removed or self.missing_data)


class StorageProvider(Protocol):
    """Object storage. Errors are the contract's (see ``providers.base``): a missing
    bucket or object is ``ProviderNotFound``; a non-empty bucket deleted without
    ``force`` is ``PermanentProviderError`` code ``BucketNotEmpty``."""

    async def create_bucket(self, spec: BucketSpec) -> ObservedBucket:
        """Creates ``bucket_name(spec.resource_id)`` (private, encrypted, tagged with the
        resource and project ids), or returns it when it exists already."""
        ...

    async def find_bucket(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedBucket | None: ...

    async def describe_bucket(self, *, region: str, provider_id: str) -> ObservedBucket: ...

    async def delete_bucket(self, *, region: str, provider_id: str, force: bool) -> None:
        """Idempotent. ``force`` deletes every object (and unfinished upload) first."""
        ...

    async def set_versioning(self, *, region: str, provider_id: str, enabled: bool) -> None: ...

    async def bucket_stats(self, *, region: str, provider_id: str) -> BucketStats: ...

    async def list_buckets(self, *, region: str) -> set[str]:
        """The provider ids of every bucket Lariba made in the region: the inventory
        drift is found from."""
        ...

    async def put_object(
        self,
        *,
        region: str,
        provider_id: str,
        request: PutRequest,
        body: AsyncIterator[bytes],
        max_bytes: int | None = None,
    ) -> ObjectInfo:
        """Streams ``body`` in; nothing is visible until all of it is stored and checked.
        More than ``max_bytes`` (or than the declared length) is refused (code
        ``EntityTooLarge``), fewer than declared too (``IncompleteBody``), a checksum
        mismatch is ``BadDigest``."""
        ...

    async def get_object(
        self, *, region: str, provider_id: str, key: str, byte_range: ByteRange | None = None
    ) -> ObjectBody:
        """A range starting past the end is ``PermanentProviderError`` ``InvalidRange``."""
        ...

    async def head_object(self, *, region: str, provider_id: str, key: str) -> ObjectInfo: ...

    async def list_objects(
        self,
        *,
        region: str,
        provider_id: str,
        prefix: str = "",
        delimiter: str | None = None,
        token: str | None = None,
        limit: int = 1000,
    ) -> ObjectListing: ...

    async def delete_object(self, *, region: str, provider_id: str, key: str) -> None:
        """Idempotent: deleting a missing key succeeds."""
        ...

    async def copy_object(
        self,
        *,
        region: str,
        source_provider_id: str,
        source_key: str,
        provider_id: str,
        key: str,
    ) -> ObjectInfo: ...

    async def create_multipart_upload(
        self, *, region: str, provider_id: str, request: PutRequest
    ) -> str:
        """The provider's upload id."""
        ...

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
    ) -> UploadedPart: ...

    async def complete_multipart_upload(
        self,
        *,
        region: str,
        provider_id: str,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
    ) -> ObjectInfo:
        """``parts`` in ascending part number order (``InvalidPartOrder`` otherwise);
        every part but the last at least the minimum part size (``EntityTooSmall``)."""
        ...

    async def abort_multipart_upload(
        self, *, region: str, provider_id: str, key: str, upload_id: str
    ) -> None:
        """Idempotent."""
        ...

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
        """A URL for one GET of the object, or one PUT of it (or of a part of the
        multipart upload ``upload_id``). A PUT's ``content_length`` is bound to the
        signature: the upload must be exactly that long."""
        ...

    async def check(self) -> StorageCheck:
        """Removes what interrupted writes left behind and reports objects whose bytes
        are missing; run periodically (S3 writes are atomic: nothing to do there)."""
        ...
