"""The provider contract's database part: managed PostgreSQL databases and snapshots.

Databases and snapshots are named after Lariba's resource ids, so a create that is tried
again after a crash finds what the first attempt made instead of making a second one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class DatabaseState(StrEnum):
    """What the provider reports, in RDS's words (the ones Lariba acts on)."""

    creating = "creating"
    available = "available"
    modifying = "modifying"
    backing_up = "backing-up"
    deleting = "deleting"
    failed = "failed"


class SnapshotState(StrEnum):
    creating = "creating"
    available = "available"
    deleting = "deleting"
    failed = "failed"


@dataclass(frozen=True)
class DatabaseSpec:
    """What to create. ``size`` and ``engine_version`` are catalog names, which each
    provider maps to its own (an RDS instance class, a local connection limit).
    ``restore_from`` is the provider id of a snapshot to start from."""

    resource_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    region: str
    engine_version: str
    size: str
    storage_gb: int
    password: str
    deletion_protection: bool = False
    restore_from: str | None = None


@dataclass(frozen=True)
class DatabaseNames:
    """The database and login a tenant connects with; fixed by the resource id."""

    database: str
    username: str


@dataclass(frozen=True)
class ObservedDatabase:
    """A database as the provider sees it now."""

    provider_id: str
    region: str
    state: DatabaseState
    engine_version: str | None
    size: str | None
    storage_gb: int | None
    database: str
    username: str
    host: str | None = None
    port: int | None = None
    deletion_protection: bool = False
    resource_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedSnapshot:
    provider_id: str
    region: str
    state: SnapshotState
    database_provider_id: str
    resource_id: uuid.UUID | None = None
    size_bytes: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class DatabaseMetrics:
    """For monitoring: the database's size on disk and its open connections."""

    size_bytes: int
    connections: int


class DatabaseProvider(Protocol):
    """Managed databases. Errors are the contract's (see ``providers.base``): a refusal is
    ``PermanentProviderError``, a database or snapshot that is not there ``ProviderNotFound``."""

    def names(self, resource_id: uuid.UUID) -> DatabaseNames:
        """The database and user name the resource will have (known before it exists)."""
        ...

    async def create_database(self, spec: DatabaseSpec) -> ObservedDatabase:
        """Creates the database (from ``spec.restore_from`` when set) and returns once the
        provider has accepted it. Idempotent: a database that already exists for the
        resource is returned as it is."""
        ...

    async def find_database(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedDatabase | None:
        """The database made for ``resource_id``, if any (not one being deleted)."""
        ...

    async def describe_database(self, *, region: str, provider_id: str) -> ObservedDatabase:
        """Raises ProviderNotFound when it does not exist."""
        ...

    async def list_databases(self, *, region: str) -> list[ObservedDatabase]:
        """Every database Lariba made in the region: the inventory for drift."""
        ...

    async def resize_database(
        self, *, region: str, provider_id: str, size: str, storage_gb: int
    ) -> None:
        """Changes the size and allocated storage (storage never shrinks on RDS)."""
        ...

    async def set_password(self, *, region: str, provider_id: str, password: str) -> None: ...

    async def set_deletion_protection(
        self, *, region: str, provider_id: str, enabled: bool
    ) -> None:
        """Where the provider has it (RDS), it refuses to delete a protected database."""
        ...

    async def delete_database(
        self, *, region: str, provider_id: str, final_snapshot: uuid.UUID | None = None
    ) -> None:
        """Idempotent: deleting a missing database succeeds. ``final_snapshot`` is the
        resource id of a snapshot to take first (named like ``create_snapshot``'s)."""
        ...

    async def create_snapshot(
        self,
        *,
        region: str,
        database_provider_id: str,
        resource_id: uuid.UUID,
        project_id: uuid.UUID,
    ) -> ObservedSnapshot:
        """Snapshots the database; idempotent by ``resource_id``."""
        ...

    async def find_snapshot(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedSnapshot | None: ...

    async def describe_snapshot(self, *, region: str, provider_id: str) -> ObservedSnapshot:
        """Raises ProviderNotFound when it does not exist."""
        ...

    async def delete_snapshot(self, *, region: str, provider_id: str) -> None:
        """Idempotent: deleting a missing snapshot succeeds."""
        ...

    async def metrics(self, *, region: str, provider_id: str) -> DatabaseMetrics: ...
