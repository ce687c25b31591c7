"""What the Lariba Cloud client returns: frozen records of the fields users need, read
from the API's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
