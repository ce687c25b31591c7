"""RDS for PostgreSQL behind the ``DatabaseProvider`` contract.

DB instances and snapshots are named after Lariba's resource ids (``lariba-<id>``), so a
create retried after a crash finds the first one (RDS refuses a second with the same
identifier). Every database is private (``PubliclyAccessible=False``), encrypted
(``StorageEncrypted=True``) and tagged with the resource and project ids. The master
password is made by Lariba and passed in, so it can be shown to the user once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lariba.providers.aws.client import (
    CONNECT_TIMEOUT_SECONDS,
    MAX_ATTEMPTS,
    READ_TIMEOUT_SECONDS,
    RegionalClients,
)
from lariba.providers.aws.errors import classify
from lariba.providers.base import (
    TAG_PROJECT_ID,
    TAG_RESOURCE_ID,
    PermanentProviderError,
    ProviderError,
    ProviderNotFound,
    TransientProviderError,
)
from lariba.providers.catalog import Catalog
from lariba.providers.databases import (
    DatabaseMetrics,
    DatabaseNames,
    DatabaseSpec,
    DatabaseState,
    ObservedDatabase,
    ObservedSnapshot,
    SnapshotState,
)

T = TypeVar("T")

_PREFIX = "lariba-"
_SNAPSHOT_PREFIX = "lariba-snap-"
DATABASE_NAME = "app"
MASTER_USERNAME = "app"
_NOT_FOUND = frozenset(
    {
        "DBInstanceNotFound",
        "DBInstanceNotFoundFault",
        "DBSnapshotNotFound",
        "DBSnapshotNotFoundFault",
    }
)
# RDS is busy with the resource (a backup, a modification): the same call works later.
_BUSY = frozenset(
    {
        "InvalidDBInstanceState",
        "InvalidDBInstanceStateFault",
        "InvalidDBSnapshotState",
        "InvalidDBSnapshotStateFault",
        "SnapshotQuotaExceeded",
    }
)
_STATES = {
    "creating": DatabaseState.creating,
    "available": DatabaseState.available,
    "backing-up": DatabaseState.backing_up,
    "deleting": DatabaseState.deleting,
    "failed": DatabaseState.failed,
    "incompatible-restore": DatabaseState.failed,
    "incompatible-parameters": DatabaseState.failed,
    "restore-error": DatabaseState.failed,
}


def _classify(exc: BotoCoreError | ClientError) -> ProviderError:
    error = classify(exc)
    if error.code in _NOT_FOUND:
        return ProviderNotFound(error.message, code=error.code)
    if error.code in _BUSY:
        return TransientProviderError(error.message, code=error.code)
    return error


async def _call(operation: Callable[[], T]) -> T:
    """Runs a blocking boto3 call off the event loop, raising the contract's errors."""
    try:
        return await asyncio.to_thread(operation)
    except (ClientError, BotoCoreError) as exc:
        raise _classify(exc) from exc


def _code(exc: ProviderError) -> str:
    return exc.code.removesuffix("Fault")


class AwsDatabases:
    """RDS in the catalog's regions; credentials and endpoint as ``AwsCompute``'s."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._catalog = catalog
        self._clients: dict[str, RegionalClients[Any]] = {
            service: RegionalClients(
                service,
                session=session,
                endpoint_url=endpoint_url,
                connect_timeout_seconds=connect_timeout_seconds,
                read_timeout_seconds=read_timeout_seconds,
                max_attempts=max_attempts,
            )
            for service in ("rds", "cloudwatch")
        }

    def warm_up(self, regions: Sequence[str]) -> None:
        for clients in self._clients.values():
            clients.warm(regions)

    def _client(self, service: str, region: str) -> Any:
        if self._catalog.region(region) is None:
            raise PermanentProviderError(
                f"region {region!r} is not in the aws catalog", code="UnknownRegion"
            )
        return self._clients[service].region(region)

    def _rds(self, region: str) -> Any:
        return self._client("rds", region)

    def names(self, resource_id: uuid.UUID) -> DatabaseNames:
        return DatabaseNames(database=DATABASE_NAME, username=MASTER_USERNAME)

    def _identifier(self, resource_id: uuid.UUID) -> str:
        return f"{_PREFIX}{resource_id}"

    def _snapshot_identifier(self, resource_id: uuid.UUID) -> str:
        return f"{_SNAPSHOT_PREFIX}{resource_id}"

    def _instance_class(self, size: str) -> str:
        found = self._catalog.database_size(size)
        instance_class = found.provider.get("instance_class") if found else None
        if not isinstance(instance_class, str):
            raise PermanentProviderError(
                f"database size {size!r} is not in the aws catalog", code="UnknownSize"
            )
        return instance_class

    def _engine_version(self, version: str) -> str:
        found = self._catalog.database_engine(version)
        engine_version = found.provider.get("engine_version") if found else None
        if not isinstance(engine_version, str):
            raise PermanentProviderError(
                f"engine version {version!r} is not in the aws catalog", code="UnknownEngine"
            )
        return engine_version

    def _size_of(self, instance_class: str | None) -> str | None:
        return next(
            (
                s.name
                for s in self._catalog.database_sizes
                if s.provider.get("instance_class") == instance_class
            ),
            None,
        )

    def _observed(self, region: str, instance: dict[str, Any]) -> ObservedDatabase:
        tags = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
        endpoint = instance.get("Endpoint") or {}
        status = str(instance.get("DBInstanceStatus", "creating"))
        version = instance.get("EngineVersion")
        resource_id = tags.get(TAG_RESOURCE_ID)
        project_id = tags.get(TAG_PROJECT_ID)
        return ObservedDatabase(
            provider_id=instance["DBInstanceIdentifier"],
            region=region,
            # Anything else RDS reports (modifying, rebooting, upgrading ...) is a change
            # in progress.
            state=_STATES.get(status, DatabaseState.modifying),
            engine_version=str(version).split(".")[0] if version else None,
            size=self._size_of(instance.get("DBInstanceClass")),
            storage_gb=instance.get("AllocatedStorage"),
            database=instance.get("DBName") or DATABASE_NAME,
            username=instance.get("MasterUsername") or MASTER_USERNAME,
            host=endpoint.get("Address"),
            port=endpoint.get("Port"),
            deletion_protection=bool(instance.get("DeletionProtection")),
            resource_id=uuid.UUID(resource_id) if resource_id else None,
            project_id=uuid.UUID(project_id) if project_id else None,
            extra={"status": status},
        )

    def _tags(self, resource_id: uuid.UUID, project_id: uuid.UUID, name: str) -> list[Any]:
        return [
            {"Key": TAG_RESOURCE_ID, "Value": str(resource_id)},
            {"Key": TAG_PROJECT_ID, "Value": str(project_id)},
            {"Key": "Name", "Value": name},
        ]

    async def _describe(self, region: str, identifier: str) -> dict[str, Any]:
        rds = self._rds(region)
        answer = await _call(lambda: rds.describe_db_instances(DBInstanceIdentifier=identifier))
        instances: list[dict[str, Any]] = answer.get("DBInstances", [])
        if not instances:
            raise ProviderNotFound(f"DB instance {identifier} not found", code="DBInstanceNotFound")
        return instances[0]

    async def create_database(self, spec: DatabaseSpec) -> ObservedDatabase:
        rds = self._rds(spec.region)
        identifier = self._identifier(spec.resource_id)
        instance_class = self._instance_class(spec.size)
        tags = self._tags(spec.resource_id, spec.project_id, spec.name)
        common: dict[str, Any] = {
            "DBInstanceIdentifier": identifier,
            "DBInstanceClass": instance_class,
            "PubliclyAccessible": False,
            "DeletionProtection": spec.deletion_protection,
            "CopyTagsToSnapshot": True,
            "Tags": tags,
        }
        try:
            if spec.restore_from is not None:
                # The snapshot's encryption carries over; the password is set once it is
                # available (RDS restores the snapshot's master user).
                answer = await _call(
                    lambda: rds.restore_db_instance_from_db_snapshot(
                        DBSnapshotIdentifier=spec.restore_from,
                        AllocatedStorage=spec.storage_gb,
                        **common,
                    )
                )
            else:
                answer = await _call(
                    lambda: rds.create_db_instance(
                        Engine="postgres",
                        EngineVersion=self._engine_version(spec.engine_version),
                        AllocatedStorage=spec.storage_gb,
                        DBName=DATABASE_NAME,
                        MasterUsername=MASTER_USERNAME,
                        MasterUserPassword=spec.password,
                        StorageEncrypted=True,
                        **common,
                    )
                )
        except PermanentProviderError as exc:
            if _code(exc) != "DBInstanceAlreadyExists":
                raise
            return self._observed(spec.region, await self._describe(spec.region, identifier))
        return self._observed(spec.region, answer["DBInstance"])

    async def find_database(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedDatabase | None:
        try:
            found = await self.describe_database(
                region=region, provider_id=self._identifier(resource_id)
            )
        except ProviderNotFound:
            return None
        return None if found.state is DatabaseState.deleting else found

    async def describe_database(self, *, region: str, provider_id: str) -> ObservedDatabase:
        return self._observed(region, await self._describe(region, provider_id))

    async def list_databases(self, *, region: str) -> list[ObservedDatabase]:
        rds = self._rds(region)

        def every() -> list[dict[str, Any]]:
            pages = rds.get_paginator("describe_db_instances").paginate()
            return [i for page in pages for i in page.get("DBInstances", [])]

        instances = await _call(every)
        return [
            self._observed(region, instance)
            for instance in instances
            if str(instance.get("DBInstanceIdentifier", "")).startswith(_PREFIX)
            and any(t["Key"] == TAG_RESOURCE_ID for t in instance.get("TagList", []))
        ]

    async def _modify(self, region: str, provider_id: str, **changes: Any) -> None:
        rds = self._rds(region)
        await _call(
            lambda: rds.modify_db_instance(
                DBInstanceIdentifier=provider_id, ApplyImmediately=True, **changes
            )
        )

    async def resize_database(
        self, *, region: str, provider_id: str, size: str, storage_gb: int
    ) -> None:
        await self._modify(
            region,
            provider_id,
            DBInstanceClass=self._instance_class(size),
            AllocatedStorage=storage_gb,
        )

    async def set_password(self, *, region: str, provider_id: str, password: str) -> None:
        await self._modify(region, provider_id, MasterUserPassword=password)

    async def set_deletion_protection(
        self, *, region: str, provider_id: str, enabled: bool
    ) -> None:
        await self._modify(region, provider_id, DeletionProtection=enabled)

    async def delete_database(
        self, *, region: str, provider_id: str, final_snapshot: uuid.UUID | None = None
    ) -> None:
        rds = self._rds(region)
        if final_snapshot is not None:
            options: dict[str, Any] = {
                "SkipFinalSnapshot": False,
                "FinalDBSnapshotIdentifier": self._snapshot_identifier(final_snapshot),
            }
        else:
            options = {"SkipFinalSnapshot": True}
        try:
            await _call(
                lambda: rds.delete_db_instance(
                    DBInstanceIdentifier=provider_id, DeleteAutomatedBackups=True, **options
                )
            )
        except ProviderNotFound:
            return
        except TransientProviderError as exc:
            # Already being deleted: that delete goes on.
            if _code(exc) != "InvalidDBInstanceState":
                raise
            if (await self._describe(region, provider_id)).get("DBInstanceStatus") != "deleting":
                raise

    async def _snapshot(self, region: str, identifier: str) -> dict[str, Any]:
        rds = self._rds(region)
        answer = await _call(lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=identifier))
        snapshots: list[dict[str, Any]] = answer.get("DBSnapshots", [])
        if not snapshots:
            raise ProviderNotFound(f"DB snapshot {identifier} not found", code="DBSnapshotNotFound")
        return snapshots[0]

    def _observed_snapshot(
        self, region: str, snapshot: dict[str, Any], resource_id: uuid.UUID | None = None
    ) -> ObservedSnapshot:
        status = str(snapshot.get("Status", "creating"))
        identifier = str(snapshot["DBSnapshotIdentifier"])
        if resource_id is None and identifier.startswith(_SNAPSHOT_PREFIX):
            resource_id = uuid.UUID(identifier.removeprefix(_SNAPSHOT_PREFIX))
        created = snapshot.get("SnapshotCreateTime")
        return ObservedSnapshot(
            provider_id=identifier,
            region=region,
            state={
                "available": SnapshotState.available,
                "deleting": SnapshotState.deleting,
                "failed": SnapshotState.failed,
            }.get(status, SnapshotState.creating),
            database_provider_id=str(snapshot.get("DBInstanceIdentifier", "")),
            resource_id=resource_id,
            created_at=created if isinstance(created, datetime) else None,
        )

    async def create_snapshot(
        self,
        *,
        region: str,
        database_provider_id: str,
        resource_id: uuid.UUID,
        project_id: uuid.UUID,
    ) -> ObservedSnapshot:
        rds = self._rds(region)
        identifier = self._snapshot_identifier(resource_id)
        try:
            answer = await _call(
                lambda: rds.create_db_snapshot(
                    DBSnapshotIdentifier=identifier,
                    DBInstanceIdentifier=database_provider_id,
                    Tags=self._tags(resource_id, project_id, identifier),
                )
            )
        except PermanentProviderError as exc:
            if _code(exc) != "DBSnapshotAlreadyExists":
                raise
            return self._observed_snapshot(region, await self._snapshot(region, identifier))
        return self._observed_snapshot(region, answer["DBSnapshot"], resource_id)

    async def find_snapshot(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedSnapshot | None:
        try:
            return await self.describe_snapshot(
                region=region, provider_id=self._snapshot_identifier(resource_id)
            )
        except ProviderNotFound:
            return None

    async def describe_snapshot(self, *, region: str, provider_id: str) -> ObservedSnapshot:
        return self._observed_snapshot(region, await self._snapshot(region, provider_id))

    async def delete_snapshot(self, *, region: str, provider_id: str) -> None:
        rds = self._rds(region)
        try:
            await _call(lambda: rds.delete_db_snapshot(DBSnapshotIdentifier=provider_id))
        except ProviderNotFound:
            return

    async def metrics(self, *, region: str, provider_id: str) -> DatabaseMetrics:
        """From CloudWatch: the latest ``DatabaseConnections`` and allocated storage less
        ``FreeStorageSpace`` (0 while CloudWatch has no datapoint yet)."""
        instance = await self._describe(region, provider_id)
        cloudwatch = self._client("cloudwatch", region)
        now = datetime.now(UTC)

        def latest(metric: str) -> float | None:
            answer = cloudwatch.get_metric_statistics(
                Namespace="AWS/RDS",
                MetricName=metric,
                Dimensions=[{"Name": "DBInstanceIdentifier", "Value": provider_id}],
                StartTime=now - timedelta(minutes=10),
                EndTime=now,
                Period=60,
                Statistics=["Average"],
            )
            points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
            return float(points[-1]["Average"]) if points else None

        connections = await _call(lambda: latest("DatabaseConnections"))
        free = await _call(lambda: latest("FreeStorageSpace"))
        allocated = int(instance.get("AllocatedStorage") or 0) * 1024**3
        return DatabaseMetrics(
            size_bytes=max(0, allocated - int(free)) if free is not None else 0,
            connections=int(connections or 0),
        )
