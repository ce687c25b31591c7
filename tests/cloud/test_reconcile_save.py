"""``ReconcilePass.save``: one statement on the pass's own connection that writes what the
pass saw, the status change with its event, and the operation's progress and end — and
leaves the status and the operation alone when the user changed the resource meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from lariba.cloud.engine.models import Operation, Resource, ResourceEvent
from lariba.cloud.engine.reconciler import ReconcilePass
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.providers.base import PermanentProviderError
from tests.fixtures.cloud import cloud_app, cloud_settings, create_instance
from tests.fixtures.identity import create_project, sign_up


@asynccontextmanager
async def created_instance(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[CloudRuntime, uuid.UUID]]:
    """An instance accepted by the API, its create operation pending: no worker runs."""
    async with cloud_app(cloud_settings(tmp_path), database_url, run_worker=False) as (
        app,
        client,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_instance(client, user, pid, size="nano")
        yield app.state.cloud, uuid.UUID(created["resource"]["id"])


@asynccontextmanager
async def pass_over(runtime: CloudRuntime, resource_id: uuid.UUID) -> AsyncIterator[ReconcilePass]:
    """A pass over the resource on an autocommit connection of the locks pool, as the
    reconciler runs one (without its advisory lock: no worker runs here)."""
    async with runtime.locks.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        async with AsyncSession(bind=connection, expire_on_commit=False) as session:
            resource = await session.get(Resource, resource_id)
            operation = await session.scalar(
                select(Operation).where(Operation.resource_id == resource_id)
            )
        assert resource is not None and operation is not None
        yield ReconcilePass(runtime, resource, operation, connection)


@asynccontextmanager
async def counting(connection: AsyncConnection) -> AsyncIterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    target = connection.sync_connection
    assert target is not None
    event.listen(target, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", record)


async def events_of(db: AsyncSession, resource_id: uuid.UUID) -> list[tuple[str, str | None, str]]:
    rows = await db.execute(
        select(ResourceEvent.type, ResourceEvent.from_status, ResourceEvent.to_status)
        .where(ResourceEvent.resource_id == resource_id)
        .order_by(ResourceEvent.id)
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def fresh(db: AsyncSession, resource_id: uuid.UUID) -> tuple[Resource, Operation]:
    db.expire_all()
    resource = await db.get(Resource, resource_id)
    operation = await db.scalar(select(Operation).where(Operation.resource_id == resource_id))
    assert resource is not None and operation is not None
    return resource, operation


async def test_saves_write_status_event_and_operation_in_one_statement(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with (
        created_instance(tmp_path, test_database_url) as (runtime, rid),
        pass_over(runtime, rid) as work,
    ):
        async with counting(work.connection) as statements:
            await work.save(
                status="provisioning",
                create_attempts=1,
                progress="creating the instance",
                operation_params={"attempt": 1},
            )
        assert len(statements) == 1
        assert (work.resource.status, work.resource.create_attempts) == ("provisioning", 1)
        assert work.operation is not None and work.operation.params == {"attempt": 1}
        resource, operation = await fresh(db, rid)
        assert (resource.status, resource.create_attempts) == ("provisioning", 1)
        assert (operation.status, operation.progress) == ("running", "creating the instance")
        assert operation.started_at is not None and operation.params == {"attempt": 1}
        assert await events_of(db, rid) == [
            ("status_changed", None, "pending"),
            ("status_changed", "pending", "provisioning"),
        ]
        change = await db.scalar(
            select(ResourceEvent.operation_id).where(
                ResourceEvent.resource_id == rid, ResourceEvent.to_status == "provisioning"
            )
        )
        assert change == operation.id

        # Nothing differs: no event, and the row is not rewritten.
        await work.save(status="provisioning", create_attempts=1, retries=0, last_error=None)
        again, _ = await fresh(db, rid)
        assert again.updated_at == resource.updated_at
        assert len(await events_of(db, rid)) == 2

        work.note(provider_id="lx-0001", observed={"state": "running"})
        async with counting(work.connection) as statements:
            await work.converge("running")
        assert len(statements) == 1
        resource, operation = await fresh(db, rid)
        assert (resource.status, resource.provider_id) == ("running", "lx-0001")
        assert resource.observed == {"state": "running"}
        assert resource.observed_generation == resource.generation == 1
        assert (operation.status, operation.progress) == ("succeeded", None)
        assert operation.finished_at is not None and operation.error is None
        assert (await events_of(db, rid))[-1] == ("status_changed", "provisioning", "running")
        # None is written as SQL NULL, not as JSON's null.
        assert await db.scalar(select(Resource.id).where(Resource.last_error.is_(None))) == rid


async def test_a_save_after_the_user_changed_the_resource_keeps_only_observations(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with (
        created_instance(tmp_path, test_database_url) as (runtime, rid),
        pass_over(runtime, rid) as work,
    ):
        # The user's change lands while the pass talks to the provider.
        await db.execute(
            update(Resource).where(Resource.id == rid).values(generation=Resource.generation + 1)
        )
        await db.commit()
        work.note(provider_id="lx-0002")
        await work.fail(PermanentProviderError("refused", code="InvalidParameter"))
        resource, operation = await fresh(db, rid)
        # Observations are kept; the status, its event and the operation's end wait
        # for the pass that the change queued.
        assert resource.provider_id == "lx-0002"
        assert resource.last_error == {"code": "InvalidParameter", "message": "refused"}
        assert (resource.status, resource.status_reason) == ("pending", None)
        assert (operation.status, operation.finished_at, operation.error) == (
            "running",
            None,
            None,
        )
        assert await events_of(db, rid) == [("status_changed", None, "pending")]
        assert work.resource.status == "pending" and work.resource.generation == 2

        # The pass the change queued sees the new generation, and the drift it records.
        async with pass_over(runtime, rid) as later:
            await later.save(status="stopped", reason="stopped outside Lariba", event_type="drift")
            resource, _ = await fresh(db, rid)
            assert (resource.status, resource.status_reason) == (
                "stopped",
                "stopped outside Lariba",
            )
            assert (await events_of(db, rid))[-1] == ("drift", "pending", "stopped")
