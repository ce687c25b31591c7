"""Request and response bodies of the buckets and objects API."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from lariba.cloud.engine.models import Resource
from lariba.cloud.instances.schemas import Labels
from lariba.core.numbers import WholeNumber
from lariba.providers.storage import (
    MAX_PARTS,
    MAX_PRESIGN_SECONDS,
    MAX_SINGLE_PUT_BYTES,
    ObjectInfo,
    PresignedRequest,
    key_problem,
    metadata_problem,
)

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def bucket_name_problem(name: str) -> str | None:
    """S3's naming rules (general purpose buckets), or None when the name is fine."""
    if not _BUCKET_NAME.match(name):
        return (
            "3-63 lowercase letters, digits, hyphens and dots, starting and ending with "
            "a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return "no two adjacent dots, and no dot next to a hyphen"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "must not look like an IP address"
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(
        ("-s3alias", "--ol-s3", ".mrap", "--x-s3")
    ):
        return "uses a prefix or suffix S3 reserves"
    return None


BucketName = Annotated[
    str,
    Field(
        min_length=3,
        max_length=63,
        description="S3's rules: 3-63 lowercase letters, digits, hyphens and dots, starting "
        "and ending with a letter or digit, not an IP address. Unique among the project's "
        "buckets.",
        examples=["analytics-raw"],
    ),
]
# key_problem's rules as a pattern, for the schema (the UTF-8 length is checked apart).
OBJECT_KEY_PATTERN = r"^(?!/)(?!(?:.*/)?\.\.?(?:/|$))[^\x00-\x1f\x7f]+$"
ObjectKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        description="Up to 1024 bytes of UTF-8; no NUL or control characters, no leading "
        "`/`, no `.` or `..` segment.",
        examples=["reports/2026/11/summary.csv"],
        json_schema_extra={"pattern": OBJECT_KEY_PATTERN},
    ),
]
Metadata = Annotated[
    dict[str, str],
    Field(
        max_length=64,
        description="User metadata (S3's `x-amz-meta-*`): lowercase names, ASCII values, "
        "2 KiB in all.",
        examples=[{"origin": "etl"}],
        json_schema_extra={
            "propertyNames": {"pattern": r"^[a-z0-9][a-z0-9-]{0,127}$"},
            "additionalProperties": {"type": "string", "pattern": r"^[ -~]*$"},
        },
    ),
]


def _check_key(value: str) -> str:
    problem = key_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    problem = metadata_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class BucketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: BucketName
    region: str | None = Field(
        default=None, max_length=64, description="A catalog region. Default: the first one."
    )
    versioning: StrictBool = Field(default=False, description="Keep every version of every object.")
    labels: Labels = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = bucket_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class LabelsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: Labels = Field(description="The bucket's new labels (replacing the old ones).")


class VersioningUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool = Field(description="On: keep every version. Off: suspend versioning.")


class BucketOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    region: str
    provider: str
    status: str = Field(
        description="pending, provisioning, available, modifying, deleting, deleted or error "
        "(see status_reason)."
    )
    status_reason: str | None
    desired_state: str
    versioning: bool
    labels: dict[str, str]
    objects: int | None = Field(description="Objects stored (None until first observed).")
    bytes: int = Field(description="Bytes stored: what counts against `storage_bytes`.")
    provider_id: str | None
    generation: int
    observed_generation: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(
        cls, resource: Resource, *, objects: int | None = None, size: int | None = None
    ) -> BucketOut:
        observed = resource.observed or {}
        return cls(
            id=resource.id,
            project_id=resource.project_id,
            name=resource.name,
            region=resource.region,
            provider=resource.provider,
            status=resource.status,
            status_reason=resource.status_reason,
            desired_state=resource.desired_state,
            versioning=bool(resource.spec.get("versioning")),
            labels=resource.labels,
            objects=objects if objects is not None else observed.get("objects"),
            bytes=size if size is not None else int(resource.usage.get("storage_bytes", 0)),
            provider_id=resource.provider_id,
            generation=resource.generation,
            observed_generation=resource.observed_generation,
            created_at=resource.created_at,
            updated_at=resource.updated_at,
            deleted_at=resource.deleted_at,
        )


class ObjectOut(BaseModel):
    key: str
    size: int
    etag: str = Field(description="The MD5 of the bytes, or S3's `<md5 of md5s>-<parts>`.")
    last_modified: datetime
    content_type: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    checksum_sha256: str | None = None

    @classmethod
    def of(cls, info: ObjectInfo) -> ObjectOut:
        return cls(
            key=info.key,
            size=info.size,
            etag=info.etag,
            last_modified=info.last_modified,
            content_type=info.content_type,
            metadata=dict(info.metadata),
            checksum_sha256=info.checksum_sha256,
        )


class ObjectPage(BaseModel):
    items: list[ObjectOut] = Field(description="Objects in key order.")
    prefixes: list[str] = Field(
        description='With a delimiter: the common prefixes ("folders") on this page.'
    )
    next_cursor: str | None = None


class PresignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: ObjectKey
    method: Literal["GET", "PUT"]
    expires_in: WholeNumber = Field(
        default=3600,
        ge=1,
        le=MAX_PRESIGN_SECONDS,
        description="Seconds (at most 7 days).",
    )
    content_length: WholeNumber | None = Field(
        default=None,
        ge=0,
        le=MAX_SINGLE_PUT_BYTES,
        description="PUT only, and required: the exact size of the upload, checked against "
        "the `storage_bytes` quota now and bound to the signature.",
    )
    content_type: str | None = Field(default=None, max_length=255, description="PUT only.")
    metadata: Metadata = Field(default_factory=dict, description="PUT only.")

    _key = field_validator("key")(_check_key)
    _metadata = field_validator("metadata")(_check_metadata)


class PresignOut(BaseModel):
    url: str
    method: Literal["GET", "PUT"]
    headers: dict[str, str] = Field(description="Send these with the request: they are signed.")
    expires_at: datetime

    @classmethod
    def of(cls, presigned: PresignedRequest) -> PresignOut:
        return cls(
            url=presigned.url,
            method=presigned.method,
            headers=dict(presigned.headers),
            expires_at=presigned.expires_at,
        )


class CopyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_key: ObjectKey
    key: ObjectKey = Field(description="The copy's key in this bucket.")
    source_bucket_id: uuid.UUID | None = Field(
        default=None, description="Another bucket of the project. Default: this one."
    )

    _source_key = field_validator("source_key")(_check_key)
    _key = field_validator("key")(_check_key)


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: ObjectKey
    content_type: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default_factory=dict)

    _key = field_validator("key")(_check_key)
    _metadata = field_validator("metadata")(_check_metadata)


class UploadOut(BaseModel):
    upload_id: uuid.UUID
    bucket_id: uuid.UUID
    key: str
    created_at: datetime


class PartPresignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_number: WholeNumber = Field(ge=1, le=MAX_PARTS)
    content_length: WholeNumber = Field(
        ge=1, le=MAX_SINGLE_PUT_BYTES, description="The part's exact size (signed)."
    )
    expires_in: WholeNumber = Field(default=3600, ge=1, le=MAX_PRESIGN_SECONDS)


class CompletedPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_number: WholeNumber = Field(ge=1, le=MAX_PARTS)
    etag: str = Field(min_length=1, max_length=128, description="The part upload's ETag.")


class UploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[CompletedPart] = Field(
        min_length=1, max_length=MAX_PARTS, description="Every part, by ascending part number."
    )
