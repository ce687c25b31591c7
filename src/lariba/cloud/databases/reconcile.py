"""How the reconciler makes a database, and a database snapshot, at the provider match
its record."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from lariba.cloud.databases.models import DatabaseCredential
from lariba.cloud.engine.models import DesiredState, Resource, ResourceStatus
from lariba.cloud.engine.reconciler import (
    Converged,
    Outcome,
    ReconcilePass,
    Requeue,
    failure_reason,
)
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.envelope import Envelope, envelope_from
from lariba.core.settings import Settings
from lariba.providers.base import PermanentProviderError, ProviderNotFound
from lariba.providers.databases import (
    DatabaseProvider,
    DatabaseSpec,
    DatabaseState,
    ObservedDatabase,
    ObservedSnapshot,
    SnapshotState,
)

KIND = "database"
SNAPSHOT_KIND = "database_snapshot"

# A pass that acts (resize, password) looks again at once, a few times.
_STEPS_PER_PASS = 4
_BUSY = {
    DatabaseState.creating: ResourceStatus.provisioning,
    DatabaseState.modifying: ResourceStatus.modifying,
    DatabaseState.backing_up: ResourceStatus.modifying,
}


def envelope(settings: Settings) -> Envelope:
    previous = settings.secret_key_previous
    return envelope_from(
        settings.master_key, previous.get_secret_value() if previous is not None else None
    )


def password_purpose(resource_id: uuid.UUID) -> str:
    return f"database-password:{resource_id}"


def databases_of(runtime: CloudRuntime) -> DatabaseProvider:
    database = runtime.provider.database
    if database is None:
        raise PermanentProviderError(
            f"the {runtime.provider.name} provider offers no databases", code="NotOffered"
        )
    return database


async def _password(runtime: CloudRuntime, resource_id: uuid.UUID) -> str:
    async with runtime.sessionmaker() as session:
        credential = await session.get(DatabaseCredential, resource_id)
    if credential is None:
        raise PermanentProviderError("the database has no stored password", code="NoCredentials")
    return (
        envelope(runtime.settings)
        .open(credential.sealed, purpose=password_purpose(resource_id))
        .decode()
    )


def observation(database: ObservedDatabase) -> dict[str, Any]:
    """What the API shows of the provider's view (no secret in it)."""
    return {
        "state": database.state.value,
        "engine_version": database.engine_version,
        "size": database.size,
        "storage_gb": database.storage_gb,
        "host": database.host,
        "port": database.port,
        "database": database.database,
        "username": database.username,
    }


def database_spec(resource: Resource, password: str) -> DatabaseSpec:
    spec = resource.spec
    restore = spec.get("restore_from")
    return DatabaseSpec(
        resource_id=resource.id,
        project_id=resource.project_id,
        name=resource.name,
        region=resource.region,
        engine_version=spec["engine_version"],
        size=spec["size"],
        storage_gb=int(spec["storage_gb"]),
        password=password,
        deletion_protection=bool(spec.get("deletion_protection")),
        restore_from=restore["provider_id"] if restore else None,
    )


class DatabaseKind:
    name = KIND

    async def reconcile(self, work: ReconcilePass) -> Outcome:
        databases = databases_of(work.runtime)
        if work.resource.desired_state == DesiredState.deleted.value:
            return await _delete(work, databases)
        observed = await _ensure_created(work, databases)
        for _ in range(_STEPS_PER_PASS):
            outcome = await _step(work, databases, observed)
            if outcome is not None:
                return outcome
            observed = await _describe(work, databases)
        return Requeue(after=work.runtime.settings.reconcile_poll_seconds)

    async def drifted(self, runtime: CloudRuntime) -> Sequence[uuid.UUID]:
        databases = runtime.provider.database
        if databases is None:
            return []
        async with runtime.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Resource.id, Resource.region).where(
                        Resource.kind == KIND,
                        Resource.status == ResourceStatus.available.value,
                        Resource.provider == runtime.provider.name,
                    )
                )
            ).all()
        drifted: list[uuid.UUID] = []
        for region in {row.region for row in rows}:
            live = {
                database.resource_id
                for database in await databases.list_databases(region=region)
                if database.state is not DatabaseState.deleting
            }
            drifted.extend(row.id for row in rows if row.region == region and row.id not in live)
        return drifted


async def _step(
    work: ReconcilePass, databases: DatabaseProvider, observed: ObservedDatabase | None
) -> Outcome | None:
    """Acts once towards the desired state. None: it acted, observe again."""
    if observed is None:
        gone = PermanentProviderError("deleted outside Lariba", code="DatabaseGone")
        await work.save(
            status=ResourceStatus.error.value, reason=failure_reason(gone), event_type="drift"
        )
        raise gone
    await work.save(observed=observation(observed))
    poll = Requeue(after=work.runtime.settings.reconcile_poll_seconds)
    if observed.state is DatabaseState.failed:
        raise PermanentProviderError("the provider reports the database failed", code="Failed")
    if observed.state in _BUSY:
        await work.save(status=_BUSY[observed.state].value)
        return poll
    operation = work.operation
    resource = work.resource
    if operation is None:
        await work.save(status=ResourceStatus.available.value, reason=None)
        return Converged()
    region, provider_id = resource.region, observed.provider_id
    if resource.spec.get("restore_from") and not operation.params.get("password_set"):
        # A restored database starts with the snapshot's users: give it its own password.
        await work.save(progress="setting the password")
        await databases.set_password(
            region=region,
            provider_id=provider_id,
            password=await _password(work.runtime, resource.id),
        )
        await work.save(operation_params={"password_set": True})
        return None
    wanted = (resource.spec["size"], int(resource.spec["storage_gb"]))
    if operation.type == "resize" and (observed.size, observed.storage_gb) != wanted:
        if operation.params.get("requested"):
            return poll  # asked for; the provider has not applied it yet
        await work.save(status=ResourceStatus.modifying.value, progress="resizing")
        await databases.resize_database(
            region=region, provider_id=provider_id, size=wanted[0], storage_gb=wanted[1]
        )
        await work.save(operation_params={"requested": True})
        return None
    protect = bool(resource.spec.get("deletion_protection"))
    if observed.deletion_protection != protect:
        await work.save(progress="setting deletion protection")
        await databases.set_deletion_protection(
            region=region, provider_id=provider_id, enabled=protect
        )
        return None
    if operation.type == "reset_password" and not operation.params.get("password_set"):
        await work.save(status=ResourceStatus.modifying.value, progress="setting the password")
        await databases.set_password(
            region=region,
            provider_id=provider_id,
            password=await _password(work.runtime, resource.id),
        )
        await work.save(operation_params={"password_set": True})
        return None
    await work.save(status=ResourceStatus.available.value, reason=None)
    return Converged()


async def _describe(
    work: ReconcilePass, databases: DatabaseProvider, *, provider_id: str | None = None
) -> ObservedDatabase | None:
    provider_id = provider_id or work.resource.provider_id
    if provider_id is None:
        return None
    try:
        return await databases.describe_database(
            region=work.resource.region, provider_id=provider_id
        )
    except ProviderNotFound:
        return None


async def _ensure_created(
    work: ReconcilePass, databases: DatabaseProvider
) -> ObservedDatabase | None:
    """The database at the provider, created if need be, never twice: the intent is
    committed before the create call, and the provider names databases after the
    resource id, so a retried create finds the first one."""
    resource = work.resource
    if resource.provider_id is not None:
        return await _describe(work, databases)
    found = None
    if resource.create_attempts > 0:
        found = await databases.find_database(region=resource.region, resource_id=resource.id)
    if found is None:
        await work.save(
            create_attempts=resource.create_attempts + 1,
            status=ResourceStatus.provisioning.value,
            progress="creating the database at the provider",
        )
        password = await _password(work.runtime, resource.id)
        found = await databases.create_database(database_spec(work.resource, password))
    await work.save(provider_id=found.provider_id, observed=observation(found))
    return found


async def _delete(work: ReconcilePass, databases: DatabaseProvider) -> Outcome:
    resource = work.resource
    provider_id = resource.provider_id
    if provider_id is None and resource.create_attempts > 0:
        found = await databases.find_database(region=resource.region, resource_id=resource.id)
        provider_id = found.provider_id if found is not None else None
    if provider_id is not None:
        current = await _describe(work, databases, provider_id=provider_id)
        if current is not None and current.deletion_protection:
            # Lariba accepted the delete, so protection is off in the spec; the
            # provider may not have been told yet (an update superseded by this delete).
            await databases.set_deletion_protection(
                region=resource.region, provider_id=provider_id, enabled=False
            )
        final = resource.spec.get("final_snapshot_id")
        await work.save(progress="deleting the database")
        await databases.delete_database(
            region=resource.region,
            provider_id=provider_id,
            final_snapshot=uuid.UUID(final) if final else None,
        )
        try:
            observed = await databases.describe_database(
                region=resource.region, provider_id=provider_id
            )
        except ProviderNotFound:
            observed = None
        if observed is not None:
            await work.save(status=ResourceStatus.deleting.value, observed=observation(observed))
            return Requeue(after=work.runtime.settings.reconcile_poll_seconds)
    await work.save(
        status=ResourceStatus.deleted.value,
        deleted_at=datetime.now(UTC),
        observed={**resource.observed, "state": "deleted"},
    )
    # The password opens nothing any more: keep no copy of it.
    async with work.runtime.sessionmaker.begin() as session:
        await session.execute(
            delete(DatabaseCredential).where(DatabaseCredential.resource_id == resource.id)
        )
    return Converged()


def snapshot_observation(snapshot: ObservedSnapshot) -> dict[str, Any]:
    return {
        "state": snapshot.state.value,
        "size_bytes": snapshot.size_bytes,
        "created_at": snapshot.created_at.isoformat() if snapshot.created_at else None,
    }


class DatabaseSnapshotKind:
    """Snapshots are resources of their own: a ``create`` takes one, a ``delete`` removes
    it. A final snapshot is taken by its database's delete; its own pass waits for it."""

    name = SNAPSHOT_KIND

    async def reconcile(self, work: ReconcilePass) -> Outcome:
        databases = databases_of(work.runtime)
        resource = work.resource
        region = resource.region
        poll = Requeue(after=work.runtime.settings.reconcile_poll_seconds)
        if resource.desired_state == DesiredState.deleted.value:
            provider_id = resource.provider_id
            if provider_id is None and resource.create_attempts > 0:
                found = await databases.find_snapshot(region=region, resource_id=resource.id)
                provider_id = found.provider_id if found is not None else None
            if provider_id is not None:
                await work.save(progress="deleting the snapshot")
                await databases.delete_snapshot(region=region, provider_id=provider_id)
            await work.save(status=ResourceStatus.deleted.value, deleted_at=datetime.now(UTC))
            return Converged()
        snapshot: ObservedSnapshot | None
        if resource.provider_id is not None:
            snapshot = await databases.describe_snapshot(
                region=region, provider_id=resource.provider_id
            )
        else:
            snapshot = await databases.find_snapshot(region=region, resource_id=resource.id)
        if snapshot is None:
            if resource.spec.get("final"):
                return await _await_final_snapshot(work)
            await work.save(
                create_attempts=resource.create_attempts + 1,
                status=ResourceStatus.provisioning.value,
                progress="taking the snapshot",
            )
            snapshot = await databases.create_snapshot(
                region=region,
                database_provider_id=resource.spec["database_provider_id"],
                resource_id=resource.id,
                project_id=resource.project_id,
            )
        await work.save(provider_id=snapshot.provider_id, observed=snapshot_observation(snapshot))
        if snapshot.state is SnapshotState.failed:
            raise PermanentProviderError("the provider reports the snapshot failed", code="Failed")
        if snapshot.state is not SnapshotState.available:
            await work.save(status=ResourceStatus.provisioning.value)
            return poll
        await work.save(status=ResourceStatus.available.value, reason=None)
        return Converged()

    async def drifted(self, runtime: CloudRuntime) -> Sequence[uuid.UUID]:
        """Snapshots do not change by themselves; one deleted behind Lariba's back is
        found when it is restored (the restore fails with the provider's reason)."""
        return []


async def _await_final_snapshot(work: ReconcilePass) -> Outcome:
    """Waits while the database's delete takes the snapshot; fails if it ended without."""
    async with work.runtime.sessionmaker() as session:
        database = await session.get(Resource, uuid.UUID(work.resource.spec["database_id"]))
    if database is None or database.status in (
        ResourceStatus.deleted.value,
        ResourceStatus.error.value,
    ):
        raise PermanentProviderError(
            "the database's delete ended without taking the final snapshot",
            code="FinalSnapshotMissing",
        )
    await work.save(status=ResourceStatus.provisioning.value, progress="waiting for the delete")
    return Requeue(after=work.runtime.settings.reconcile_poll_seconds)
