"""Request and response bodies of the databases API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from lariba.cloud.engine.models import Resource
from lariba.cloud.engine.schemas import OperationOut
from lariba.cloud.instances.schemas import Labels
from lariba.core.numbers import WholeNumber

# RDS's ceiling for PostgreSQL storage.
MAX_STORAGE_GB = 65536

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"),
    Field(
        description="1-63 lowercase letters, digits and hyphens; starts with a letter, "
        "does not end with a hyphen. Unique among the project's databases (snapshots: "
        "among its snapshots).",
        examples=["orders"],
    ),
]
StorageGb = Annotated[
    WholeNumber,
    Field(ge=1, le=MAX_STORAGE_GB, description="Allocated storage in GB.", examples=[20]),
]


class DatabaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    size: str = Field(
        max_length=64, description="A database size (`GET /v1/catalog/database-sizes`)."
    )
    engine_version: str | None = Field(
        default=None,
        max_length=16,
        description="A PostgreSQL major version (`GET /v1/catalog/database-engines`); "
        "default: the newest.",
        examples=["18"],
    )
    storage_gb: StorageGb
    region: str | None = Field(default=None, max_length=64, description="Default: the first.")
    deletion_protection: StrictBool = Field(
        default=False,
        description="aws: RDS refuses to delete it. Lariba refuses a DELETE while it is set.",
    )
    labels: Labels = Field(default_factory=dict)


class DatabaseUpdate(BaseModel):
    """Labels (kept by Lariba only) and deletion protection (set at the provider)."""

    model_config = ConfigDict(extra="forbid")

    labels: Labels | None = Field(default=None, description="Its new labels (replacing).")
    deletion_protection: StrictBool | None = None


class DatabaseResize(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: str | None = Field(default=None, max_length=64, description="A database size.")
    storage_gb: StorageGb | None = Field(
        default=None, description="New allocated storage in GB; it can only grow."
    )


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(
        default=None, description="Default: the database's name and the time."
    )


class SnapshotRestore(BaseModel):
    """A new database from the snapshot; size and storage default to the source's."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    size: str | None = Field(default=None, max_length=64)
    storage_gb: StorageGb | None = None
    deletion_protection: StrictBool = False
    labels: Labels = Field(default_factory=dict)


class Endpoint(BaseModel):
    host: str | None
    port: int | None
    database: str
    username: str


class DatabaseOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    region: str
    provider: str
    engine_version: str
    size: str
    storage_gb: int
    deletion_protection: bool
    status: str = Field(
        description="pending, provisioning, available, modifying, deleting, deleted or "
        "error (see status_reason)."
    )
    status_reason: str | None
    desired_state: str
    labels: dict[str, str]
    endpoint: Endpoint | None = Field(
        description="Where to connect, once the provider has made it. The password is not "
        "here: see `POST .../credentials/reveal`."
    )
    restored_from_snapshot: uuid.UUID | None
    provider_id: str | None
    generation: int
    observed_generation: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, resource: Resource) -> DatabaseOut:
        spec: dict[str, Any] = resource.spec
        observed = resource.observed or {}
        restore = spec.get("restore_from")
        endpoint = None
        if observed.get("database"):
            endpoint = Endpoint(
                host=observed.get("host"),
                port=observed.get("port"),
                database=observed["database"],
                username=observed["username"],
            )
        return cls(
            id=resource.id,
            project_id=resource.project_id,
            name=resource.name,
            region=resource.region,
            provider=resource.provider,
            engine_version=spec["engine_version"],
            size=spec["size"],
            storage_gb=int(spec["storage_gb"]),
            deletion_protection=bool(spec.get("deletion_protection")),
            status=resource.status,
            status_reason=resource.status_reason,
            desired_state=resource.desired_state,
            labels=resource.labels,
            endpoint=endpoint,
            restored_from_snapshot=uuid.UUID(restore["snapshot_id"]) if restore else None,
            provider_id=resource.provider_id,
            generation=resource.generation,
            observed_generation=resource.observed_generation,
            created_at=resource.created_at,
            updated_at=resource.updated_at,
            deleted_at=resource.deleted_at,
        )


class Credentials(BaseModel):
    """Shown once at creation (and reset), and to project owners and admins on request."""

    username: str
    password: str
    database: str
    host: str | None = Field(default=None, description="Null until the database exists.")
    port: int | None = None
    uri: str | None = Field(
        default=None, description="A libpq connection URI (`postgresql://...`), once known."
    )


class MetricsOut(BaseModel):
    database_id: uuid.UUID
    size_bytes: int = Field(description="Its size on disk, in bytes.")
    connections: int = Field(description="Sessions open on it now.")


class DatabaseAccepted(OperationOut):
    """The operation, and the password it set: shown in this response only (and by
    `POST .../credentials/reveal`), never stored in the operation."""

    credentials: Credentials


class SnapshotOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    region: str
    provider: str
    database_id: uuid.UUID
    database_name: str
    engine_version: str
    size: str
    storage_gb: int
    final: bool = Field(description="Taken by its database's delete.")
    status: str = Field(description="pending, provisioning, available, deleting, deleted or error.")
    status_reason: str | None
    size_bytes: int | None = Field(description="local: the archive's size; aws: null.")
    provider_id: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, resource: Resource) -> SnapshotOut:
        spec: dict[str, Any] = resource.spec
        observed = resource.observed or {}
        return cls(
            id=resource.id,
            project_id=resource.project_id,
            name=resource.name,
            region=resource.region,
            provider=resource.provider,
            database_id=uuid.UUID(spec["database_id"]),
            database_name=spec["database_name"],
            engine_version=spec["engine_version"],
            size=spec["size"],
            storage_gb=int(spec["storage_gb"]),
            final=bool(spec.get("final")),
            status=resource.status,
            status_reason=resource.status_reason,
            size_bytes=observed.get("size_bytes"),
            provider_id=resource.provider_id,
            created_at=resource.created_at,
            updated_at=resource.updated_at,
            deleted_at=resource.deleted_at,
        )
