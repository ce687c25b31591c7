"""What the Lariba Cloud client returns: frozen records of the fields users need, read
from the API's JSON."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
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


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ResourceRef:
    """The resource a report row is about; ``name`` is None once its record is gone."""

    id: str
    kind: str
    name: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ResourceRef | None:
        if not data:
            return None
        return cls(id=data["id"], kind=data["kind"], name=data.get("name"))


@dataclass(frozen=True)
class UsageItem:
    """One row of a usage report: a meter and sku (and the groups asked for), its
    ``quantity`` in ``unit`` (Hours, GiB-Months ...) and what it cost."""

    meter: str
    sku: str
    quantity: Decimal
    unit: str
    metered_quantity: Decimal
    metered_unit: str
    cost_usd: Decimal
    day: date | None
    resource: ResourceRef | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageItem:
        return cls(
            meter=data["meter"],
            sku=data["sku"],
            quantity=_decimal(data["quantity"]),
            unit=data["unit"],
            metered_quantity=_decimal(data["metered_quantity"]),
            metered_unit=data["metered_unit"],
            cost_usd=_decimal(data["cost_usd"]),
            day=_day(data.get("day")),
            resource=ResourceRef.from_json(data.get("resource")),
        )


@dataclass(frozen=True)
class UsageReport:
    """What a project used from ``start`` (inclusive) to ``end`` (exclusive)."""

    project_id: str
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    items: tuple[UsageItem, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageReport:
        return cls(
            project_id=data["project_id"],
            start=_required_time(data["from"]),
            end=_required_time(data["to"]),
            group_by=tuple(data.get("group_by") or ()),
            items=tuple(UsageItem.from_json(item) for item in data["items"]),
        )


@dataclass(frozen=True)
class CostItem:
    """One row of a cost report; the fields not grouped by are None."""

    cost_usd: Decimal
    day: date | None
    resource: ResourceRef | None
    resource_kind: str | None
    meter: str | None
    sku: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CostItem:
        return cls(
            cost_usd=_decimal(data["cost_usd"]),
            day=_day(data.get("day")),
            resource=ResourceRef.from_json(data.get("resource")),
            resource_kind=data.get("resource_kind"),
            meter=data.get("meter"),
            sku=data.get("sku"),
        )


@dataclass(frozen=True)
class Forecast:
    """This UTC month's cost so far, and at the end of the month if what runs now keeps
    running."""

    month: str
    month_to_date_usd: Decimal
    run_rate_usd_per_hour: Decimal
    end_of_month_usd: Decimal

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Forecast:
        return cls(
            month=data["month"],
            month_to_date_usd=_decimal(data["month_to_date_usd"]),
            run_rate_usd_per_hour=_decimal(data["run_rate_usd_per_hour"]),
            end_of_month_usd=_decimal(data["end_of_month_usd"]),
        )


@dataclass(frozen=True)
class CostReport:
    project_id: str
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    currency: str
    total_usd: Decimal
    items: tuple[CostItem, ...]
    forecast: Forecast

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CostReport:
        return cls(
            project_id=data["project_id"],
            start=_required_time(data["from"]),
            end=_required_time(data["to"]),
            group_by=tuple(data.get("group_by") or ()),
            currency=data.get("currency", "USD"),
            total_usd=_decimal(data["total_usd"]),
            items=tuple(CostItem.from_json(item) for item in data["items"]),
            forecast=Forecast.from_json(data["forecast"]),
        )


@dataclass(frozen=True)
class BudgetStatus:
    month: str
    month_to_date_usd: Decimal
    end_of_month_usd: Decimal
    percent_used: Decimal
    thresholds_reached: tuple[int, ...]
    provisioning_blocked: bool


@dataclass(frozen=True)
class Budget:
    """A project's monthly budget in USD and where this month stands against it."""

    amount_usd: Decimal
    thresholds: tuple[int, ...]
    block_provisioning: bool
    status: BudgetStatus

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Budget:
        status = data["status"]
        return cls(
            amount_usd=_decimal(data["amount_usd"]),
            thresholds=tuple(data["thresholds"]),
            block_provisioning=bool(data["block_provisioning"]),
            status=BudgetStatus(
                month=status["month"],
                month_to_date_usd=_decimal(status["month_to_date_usd"]),
                end_of_month_usd=_decimal(status["end_of_month_usd"]),
                percent_used=_decimal(status["percent_used"]),
                thresholds_reached=tuple(status.get("thresholds_reached") or ()),
                provisioning_blocked=bool(status.get("provisioning_blocked")),
            ),
        )


@dataclass(frozen=True)
class Event:
    """A status change of a resource (``status_changed``), or one seen at the provider
    (``drift``). ``id`` is what a live stream resumes after."""

    id: int
    resource_id: str
    resource_kind: str
    operation_id: str | None
    type: str
    from_status: str | None
    to_status: str
    reason: str | None
    occurred_at: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            id=int(data["id"]),
            resource_id=data["resource_id"],
            resource_kind=data["resource_kind"],
            operation_id=data.get("operation_id"),
            type=data["type"],
            from_status=data.get("from_status"),
            to_status=data["to_status"],
            reason=data.get("reason"),
            occurred_at=_required_time(data["occurred_at"]),
        )


@dataclass(frozen=True)
class LogEntry:
    """One line of a resource's log: an ``operation`` (at the time it was asked for) or
    an ``event``, as ``source`` says, with a one-line ``summary``."""

    at: datetime
    source: str
    summary: str
    operation: Operation | None
    event: Event | None

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the entry in its resource's log."""
        if self.operation is not None:
            return ("operation", self.operation.id)
        return ("event", str(self.event.id if self.event else ""))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogEntry:
        operation, event = data.get("operation"), data.get("event")
        return cls(
            at=_required_time(data["at"]),
            source=data["source"],
            summary=data["summary"],
            operation=Operation.from_json(operation) if operation else None,
            event=Event.from_json(event) if event else None,
        )


@dataclass(frozen=True)
class AuditEvent:
    """Who did what to which, when, and how it went (``success``, ``failure`` or
    ``denied``)."""

    id: int
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    actor_label: str | None
    action: str
    target_type: str | None
    target_id: str | None
    project_id: str | None
    outcome: str
    client_ip: str | None
    request_id: str | None
    details: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditEvent:
        return cls(
            id=int(data["id"]),
            occurred_at=_required_time(data["occurred_at"]),
            actor_type=data["actor_type"],
            actor_id=data.get("actor_id"),
            actor_label=data.get("actor_label"),
            action=data["action"],
            target_type=data.get("target_type"),
            target_id=data.get("target_id"),
            project_id=data.get("project_id"),
            outcome=data["outcome"],
            client_ip=data.get("client_ip"),
            request_id=data.get("request_id"),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class MetricSource:
    """What an alert rule watches: a resource's metric, aggregated over the window
    (``aggregate`` None: the metric's own)."""

    resource_id: str
    metric: str
    aggregate: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "metric",
            "resource_id": self.resource_id,
            "metric": self.metric,
        }
        if self.aggregate is not None:
            body["aggregate"] = self.aggregate
        return body


@dataclass(frozen=True)
class CostSource:
    """What an alert rule watches: the project's cost, as ``month_to_date``,
    ``end_of_month_forecast`` or over the rule's ``window``."""

    measure: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "cost", "measure": self.measure}


AlertSource = MetricSource | CostSource


def _alert_source(data: Mapping[str, Any]) -> AlertSource:
    if data["type"] == "cost":
        return CostSource(measure=data["measure"])
    return MetricSource(
        resource_id=data["resource_id"], metric=data["metric"], aggregate=data.get("aggregate")
    )


@dataclass(frozen=True)
class AlertRule:
    """A rule and its ``state``: ``insufficient_data``, ``ok`` or ``alerting``."""

    id: str
    project_id: str
    name: str
    source: AlertSource
    comparison: str
    threshold: Decimal
    window: str | None
    enabled: bool
    emails: tuple[str, ...]
    state: str
    state_since: datetime
    last_value: Decimal | None
    last_evaluated_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertRule:
        return cls(
            id=data["id"],
            project_id=data["project_id"],
            name=data["name"],
            source=_alert_source(data["source"]),
            comparison=data["comparison"],
            threshold=_decimal(data["threshold"]),
            window=data.get("window"),
            enabled=bool(data["enabled"]),
            emails=tuple(data.get("emails") or ()),
            state=data["state"],
            state_since=_required_time(data["state_since"]),
            last_value=_optional_decimal(data.get("last_value")),
            last_evaluated_at=_time(data.get("last_evaluated_at")),
            created_at=_required_time(data["created_at"]),
            updated_at=_required_time(data["updated_at"]),
        )


@dataclass(frozen=True)
class AlertStateChange:
    id: int
    at: datetime
    from_state: str
    to_state: str
    value: Decimal | None
    threshold: Decimal

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertStateChange:
        return cls(
            id=int(data["id"]),
            at=_required_time(data["at"]),
            from_state=data["from_state"],
            to_state=data["to_state"],
            value=_optional_decimal(data.get("value")),
            threshold=_decimal(data["threshold"]),
        )
