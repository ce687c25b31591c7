"""What the Lariba Cloud client returns: frozen records of the fields users need, read
from the API's JSON."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _required_time(value: Any) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Tokens:
    """The credentials a client holds: keep them to resume a session later."""

    access_token: str
    refresh_token: str | None = None


@dataclass(frozen=True)
class User:
    id: str
    email: str
    display_name: str | None
    is_platform_admin: bool
    mfa_enabled: bool
    created_at: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> User:
        return cls(
            id=data["id"],
            email=data["email"],
            display_name=data.get("display_name"),
            is_platform_admin=bool(data.get("is_platform_admin")),
            mfa_enabled=bool(data.get("mfa_enabled")),
            created_at=_required_time(data["created_at"]),
        )


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    description: str | None
    role: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Project:
        return cls(
            id=data["id"],
            name=data["name"],
            description=data.get("description"),
            role=data["role"],
            created_at=_required_time(data["created_at"]),
            updated_at=_required_time(data["updated_at"]),
        )


@dataclass(frozen=True)
class FirewallRule:
    """Inbound traffic to allow: ``tcp``/``udp`` with ports, ``icmp``/``all`` without."""

    protocol: str
    cidr: str
    port_from: int | None = None
    port_to: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FirewallRule:
        return cls(
            protocol=data["protocol"],
            cidr=data["cidr"],
            port_from=data.get("port_from"),
            port_to=data.get("port_to"),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"protocol": self.protocol, "cidr": self.cidr}
        if self.port_from is not None:
            body["port_from"] = self.port_from
        if self.port_to is not None:
            body["port_to"] = self.port_to
        return body


@dataclass(frozen=True)
class Addresses:
    private_ip: str | None = None
    public_ip: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Instance:
    id: str
    project_id: str
    name: str
    region: str
    provider: str
    size: str
    image: str
    vcpus: int
    status: str
    status_reason: str | None
    desired_state: str
    labels: Mapping[str, str]
    firewall: tuple[FirewallRule, ...]
    public_ip_requested: bool
    has_user_data: bool
    ssh_key_fingerprint: str | None
    addresses: Addresses
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Instance:
        addresses = data.get("addresses") or {}
        return cls(
            id=data["id"],
            project_id=data["project_id"],
            name=data["name"],
            region=data["region"],
            provider=data["provider"],
            size=data["size"],
            image=data["image"],
            vcpus=int(data.get("vcpus", 0)),
            status=data["status"],
            status_reason=data.get("status_reason"),
            desired_state=data["desired_state"],
            labels=dict(data.get("labels") or {}),
            firewall=tuple(FirewallRule.from_json(rule) for rule in data.get("firewall") or ()),
            public_ip_requested=bool(data.get("public_ip_requested")),
            has_user_data=bool(data.get("has_user_data")),
            ssh_key_fingerprint=data.get("ssh_key_fingerprint"),
            addresses=Addresses(
                private_ip=addresses.get("private_ip"),
                public_ip=addresses.get("public_ip"),
                port=addresses.get("port"),
            ),
            created_at=_required_time(data["created_at"]),
            updated_at=_required_time(data["updated_at"]),
            deleted_at=_time(data.get("deleted_at")),
        )


@dataclass(frozen=True)
class OperationError:
    code: str
    message: str


@dataclass(frozen=True)
class Operation:
    """A change being carried out: ``pending``, ``running``, then ``succeeded`` or
    ``failed`` (with ``error``). ``resource_id`` is the resource it changes."""

    id: str
    project_id: str
    resource_id: str
    resource_kind: str
    type: str
    status: str
    progress: str | None
    error: OperationError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Operation:
        error = data.get("error")
        return cls(
            id=data["id"],
            project_id=data["project_id"],
            resource_id=data["resource"]["id"],
            resource_kind=data["resource"]["kind"],
            type=data["type"],
            status=data["status"],
            progress=data.get("progress"),
            error=OperationError(code=error["code"], message=error["message"]) if error else None,
            created_at=_required_time(data["created_at"]),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            updated_at=_required_time(data["updated_at"]),
            params=dict(data.get("params") or {}),
        )


@dataclass(frozen=True)
class Bucket:
    """An object storage bucket. ``objects`` is None until the provider has been asked;
    ``bytes`` is what counts against the project's storage quota."""

    id: str
    project_id: str
    name: str
    region: str
    provider: str
    status: str
    status_reason: str | None
    desired_state: str
    versioning: bool
    labels: Mapping[str, str]
    objects: int | None
    bytes: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Bucket:
        return cls(
            id=data["id"],
            project_id=data["project_id"],
            name=data["name"],
            region=data["region"],
            provider=data["provider"],
            status=data["status"],
            status_reason=data.get("status_reason"),
            desired_state=data["desired_state"],
            versioning=bool(data.get("versioning")),
            labels=dict(data.get("labels") or {}),
            objects=data.get("objects"),
            bytes=int(data.get("bytes") or 0),
            created_at=_required_time(data["created_at"]),
            updated_at=_required_time(data["updated_at"]),
            deleted_at=_time(data.get("deleted_at")),
        )


@dataclass(frozen=True)
class StoredObject:
    """An object in a bucket. ``etag`` is the MD5 of its bytes, or ``<md5>-<parts>`` for
    a multipart upload."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str | None
    metadata: Mapping[str, str]
    checksum_sha256: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredObject:
        return cls(
            key=data["key"],
            size=int(data["size"]),
            etag=data["etag"],
            last_modified=_required_time(data["last_modified"]),
            content_type=data.get("content_type"),
            metadata=dict(data.get("metadata") or {}),
            checksum_sha256=data.get("checksum_sha256"),
        )


@dataclass(frozen=True)
class Listing:
    """The objects under a prefix, in key order, and with a delimiter the common
    ``prefixes`` ("folders") the rest rolled up into. Iterating it gives the objects."""

    objects: tuple[StoredObject, ...]
    prefixes: tuple[str, ...]

    def __iter__(self) -> Iterator[StoredObject]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)


@dataclass(frozen=True)
class DatabaseEndpoint:
    host: str | None
    port: int | None
    database: str
    username: str


@dataclass(frozen=True)
class Database:
    """A managed PostgreSQL database; its password is not here (see ``reveal``)."""

    id: str
    project_id: str
    name: str
    region: str
    provider: str
    engine_version: str
    size: str
    storage_gb: int
    deletion_protection: bool
    status: str
    status_reason: str | None
    desired_state: str
    labels: Mapping[str, str]
    endpoint: DatabaseEndpoint | None
    restored_from_snapshot: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Database:
        endpoint = data.get("endpoint")
        return cls(
            id=data["id"],
            project_id=data["project_id"],
            name=data["name"],
            region=data["region"],
            provider=data["provider"],
            engine_version=data["engine_version"],
            size=data["size"],
            storage_gb=int(data["storage_gb"]),
            deletion_protection=bool(data.get("deletion_protection")),
            status=data["status"],
            status_reason=data.get("status_reason"),
            desired_state=data["desired_state"],
            labels=dict(data.get("labels") or {}),
            endpoint=DatabaseEndpoint(
                host=endpoint.get("host"),
                port=endpoint.get("port"),
                database=endpoint["database"],
                username=endpoint["username"],
            )
            if endpoint
            else None,
            restored_from_snapshot=data.get("restored_from_snapshot"),
            created_at=_required_time(data["created_at"]),
            updated_at=_required_time(data["updated_at"]),
            deleted_at=_time(data.get("deleted_at")),
        )


@dataclass(frozen=True)
class DatabaseCredentials:
    """How to connect to a database. ``host``, ``port`` and ``uri`` (a libpq
    ``postgresql://`` URI) are None until the database exists. The password is kept out
    of ``repr()``, so that logging the record does not leak it."""

    username: str
    password: str = field(repr=False)
    database: str
    host: str | None
    port: int | None
    uri: str | None = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatabaseCredentials:
        return cls(
            username=data["username"],
            password=data["password"],
            database=data["database"],
            host=data.get("host"),
            port=data.get("port"),
            uri=data.get("uri"),
        )


@dataclass(frozen=True)
class DatabaseCreation(Operation):
    """The ``create`` operation of a database, with the credentials the answer shows this
    once (the ``uri`` only once the database exists: ``reveal`` it then)."""

    credentials: DatabaseCredentials = field(kw_only=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatabaseCreation:
        operation = Operation.from_json(data)
        return cls(
            **{f.name: getattr(operation, f.name) for f in fields(Operation)},
            credentials=DatabaseCredentials.from_json(data["credentials"]),
        )
