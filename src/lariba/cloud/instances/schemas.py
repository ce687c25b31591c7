"""Request and response bodies of the instances API."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from lariba.cloud.engine.models import Resource
from lariba.core.numbers import WholeNumber

# EC2 refuses user data over 16 KiB.
MAX_USER_DATA_BYTES = 16 * 1024
MAX_FIREWALL_RULES = 50
MAX_LABELS = 64

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"),
    Field(
        description="1-63 lowercase letters, digits and hyphens; starts with a letter, "
        "does not end with a hyphen. Unique among the project's instances.",
        examples=["web-1"],
    ),
]
_LABEL_KEY = r"^[a-z][a-z0-9_.-]{0,62}$"
LabelKey = Annotated[str, StringConstraints(pattern=_LABEL_KEY)]
LabelValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{0,63}$")]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(
        max_length=MAX_LABELS,
        description="Up to 64 key/value pairs to organise and filter instances.",
        examples=[{"env": "prod", "team": "web"}],
        # Pydantic leaves the keys' rule out of the JSON schema.
        json_schema_extra={"propertyNames": {"pattern": _LABEL_KEY}},
    ),
]

_SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_PORTED = ("tcp", "udp")


class FirewallRuleIn(BaseModel):
    """Inbound traffic to allow. ``tcp``/``udp`` need ports; ``icmp``/``all`` take none."""

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["tcp", "udp", "icmp", "all"]
    port_from: WholeNumber | None = Field(default=None, ge=1, le=65535, examples=[22])
    port_to: WholeNumber | None = Field(
        default=None, ge=1, le=65535, description="Defaults to port_from.", examples=[22]
    )
    cidr: str = Field(
        max_length=64,
        description="Source addresses, as an IPv4 or IPv6 network.",
        examples=["203.0.113.0/24"],
    )

    @field_validator("cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ValueError(f"not a valid CIDR network ({exc})") from None

    @model_validator(mode="after")
    def _ports(self) -> Self:
        if self.protocol in _PORTED:
            if self.port_from is None:
                raise ValueError(f"port_from is required for {self.protocol}")
            if self.port_to is None:
                self.port_to = self.port_from
            if self.port_to < self.port_from:
                raise ValueError("port_to must not be below port_from")
        elif self.port_from is not None or self.port_to is not None:
            raise ValueError(f"{self.protocol} rules take no ports")
        return self


class InstanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    region: str | None = Field(
        default=None, max_length=64, description="A catalog region. Default: the first one."
    )
    size: str = Field(max_length=64, description="A catalog size.", examples=["small"])
    image: str = Field(max_length=128, description="A catalog image.")
    user_data: str | None = Field(
        default=None,
        description="A script run at first boot (on `local`: the instance's program, run "
        "by /bin/sh). At most 16 KiB.",
    )
    ssh_public_key: str | None = Field(
        default=None, max_length=8192, description="An OpenSSH public key line."
    )
    firewall: list[FirewallRuleIn] = Field(default_factory=list, max_length=MAX_FIREWALL_RULES)
    public_ip: StrictBool = Field(default=False, description="Give the instance a public address.")
    labels: Labels = Field(default_factory=dict)

    @field_validator("user_data")
    @classmethod
    def _user_data_size(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > MAX_USER_DATA_BYTES:
            raise ValueError(f"user data is larger than {MAX_USER_DATA_BYTES} bytes")
        return value

    @field_validator("ssh_public_key")
    @classmethod
    def _ssh_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.strip().split(None, 2)
        if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES:
            raise ValueError('not an OpenSSH public key ("ssh-ed25519 AAAA... comment")')
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the key's base64 part does not decode") from None
        if not re.match(rb"^\x00\x00\x00.", blob) or parts[0].encode() not in blob[:64]:
            raise ValueError("the key's type does not match its content")
        return " ".join(parts)


class LabelsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: Labels = Field(description="The instance's new labels (replacing the old ones).")


class ResizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: str = Field(max_length=64, description="A catalog size.")


class FirewallRuleOut(BaseModel):
    protocol: str
    port_from: int | None
    port_to: int | None
    cidr: str


class Addresses(BaseModel):
    private_ip: str | None = None
    public_ip: str | None = None
    port: int | None = Field(
        default=None, description="`local` only: the port in the instance's PORT variable."
    )


class InstanceOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    region: str
    provider: str
    size: str
    image: str
    vcpus: int
    status: str = Field(
        description="pending, provisioning, running, stopping, stopped, deleting, deleted "
        "or error (see status_reason)."
    )
    status_reason: str | None
    desired_state: str
    labels: dict[str, str]
    firewall: list[FirewallRuleOut]
    public_ip_requested: bool
    has_user_data: bool
    ssh_key_fingerprint: str | None
    addresses: Addresses
    provider_id: str | None
    generation: int
    observed_generation: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, resource: Resource) -> InstanceOut:
        spec: dict[str, Any] = resource.spec
        observed = resource.observed or {}
        return cls(
            id=resource.id,
            project_id=resource.project_id,
            name=resource.name,
            region=resource.region,
            provider=resource.provider,
            size=spec["size"],
            image=spec["image"],
            vcpus=int(resource.usage.get("vcpus", 0)),
            status=resource.status,
            status_reason=resource.status_reason,
            desired_state=resource.desired_state,
            labels=resource.labels,
            firewall=[FirewallRuleOut(**rule) for rule in spec.get("firewall", [])],
            public_ip_requested=bool(spec.get("public_ip")),
            has_user_data=bool(spec.get("user_data")),
            ssh_key_fingerprint=spec.get("ssh_key_fingerprint"),
            addresses=Addresses(
                private_ip=observed.get("private_ip"),
                public_ip=observed.get("public_ip"),
                port=observed.get("port"),
            ),
            provider_id=resource.provider_id,
            generation=resource.generation,
            observed_generation=resource.observed_generation,
            created_at=resource.created_at,
            updated_at=resource.updated_at,
            deleted_at=resource.deleted_at,
        )


class ConsoleOut(BaseModel):
    instance_id: uuid.UUID
    output: str = Field(description="Most recent last; bounded by the provider.")
