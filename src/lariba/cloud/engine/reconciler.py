"""The reconciler: a level-triggered pass per resource, run as durable jobs.

A pass reads the desired state, observes the provider, acts, and records what it saw.
Passes of one resource never overlap: procrastinate's job ``lock`` serialises them, and a
PostgreSQL advisory lock fences off a worker judged dead that is in fact still running.
Retriable provider errors back off exponentially with jitter; refusals end in ``error``
with the provider's reason.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import procrastinate
import structlog
from procrastinate import JobContext
from sqlalchemy import (
    CTE,
    Select,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from lariba.cloud.engine.models import (
    ACTIVE_OPERATION,
    Operation,
    OperationStatus,
    Resource,
    ResourceEvent,
    ResourceStatus,
)
from lariba.cloud.engine.operations import (
    RECONCILE_TASK,
    enqueue_reconcile,
    reconcile_locks,
)
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.jobs import TaskRegistrar
from lariba.core.metrics import RECONCILE_PASS_DURATION
from lariba.core.retry import backoff
from lariba.providers.base import PermanentProviderError, ProviderError, TransientProviderError

log = structlog.get_logger(__name__)

RESYNC_TASK = "resync_resources"


@dataclass(frozen=True)
class Converged:
    """The resource matches its desired state (now ``status``, when given): its
    operation is done."""

    status: str | None = None


@dataclass(frozen=True)
class Requeue:
    """The provider is still changing the resource: look again in ``after`` seconds."""

    after: float


Outcome = Converged | Requeue


class ResourceKind(Protocol):
    """What a resource kind (instance, bucket, database) plugs into the engine."""

    name: str

    async def reconcile(self, work: ReconcilePass) -> Outcome:
        """One level-triggered pass: observe, act idempotently, record."""
        ...

    async def drifted(self, runtime: CloudRuntime) -> Sequence[uuid.UUID]:
        """Resources of this kind whose provider state no longer matches their record,
        found from the provider's inventory (one listing per region, not one call per
        resource)."""
        ...


@dataclass(frozen=True)
class _Finish:
    succeeded: bool
    error: dict[str, Any] | None


class ReconcilePass:
    """One pass over one resource. ``resource`` and ``operation`` are snapshots taken at
    the start. ``note`` keeps observations in memory; ``save`` writes them, with any
    status change, in one statement on the connection that holds the pass's lock: a pass
    commits only what must be durable before its next provider call (the intent to
    create) and what it found at the end."""

    def __init__(
        self,
        runtime: CloudRuntime,
        resource: Resource,
        operation: Operation | None,
        connection: AsyncConnection,
    ) -> None:
        self.runtime = runtime
        # The pass's own connection (autocommit), which holds its advisory lock.
        self.connection = connection
        self.resource = resource
        self.operation = operation
        self.generation = resource.generation
        self._noted: dict[str, Any] = {}

    def note(self, **fields: Any) -> None:
        """Observed fields (provider id, observations) for the next ``save``. Losing them
        in a crash is harmless: the next pass observes again (and finds by tag)."""
        self._noted.update(fields)
        for name, value in fields.items():
            setattr(self.resource, name, value)

    @property
    def has_notes(self) -> bool:
        return bool(self._noted)

    async def save(
        self,
        *,
        status: str | None = None,
        reason: str | None = None,
        event_type: str = "status_changed",
        progress: str | None = None,
        operation_params: Mapping[str, Any] | None = None,
        finish: _Finish | None = None,
        **fields: Any,
    ) -> None:
        """Records what the pass saw or did. A status change (and the end of the
        operation) is skipped when the user changed the desired state meanwhile: a newer
        pass is queued and will set it. ``fields`` are always kept.

        One statement, so one round trip and its own transaction: it locks the resource
        row, updates it when something changed, records the status change's event and
        moves the operation on."""
        fields = {**self._noted, **fields}
        self._noted = {}
        statement = _save_statement(
            self,
            status=status,
            reason=reason,
            event_type=event_type,
            progress=progress,
            operation_params=operation_params,
            finish=finish,
            fields=fields,
        )
        row = (await self.connection.execute(statement)).mappings().one_or_none()
        if row is None:
            return
        resource = Resource(**{column.key: row[column.name] for column in _RESOURCES.c})
        for name, value in fields.items():
            setattr(resource, name, value)
        if status is not None and resource.generation == self.generation:
            resource.status = status
            resource.status_reason = reason
        self.resource = resource
        if self.operation is not None and operation_params:
            self.operation.params = {**self.operation.params, **operation_params}

    async def converge(self, status: str | None = None) -> None:
        """The resource matches its desired state: records it (and ``status``) and ends
        the operation, in one transaction."""
        await self.save(
            status=status,
            reason=None if status is not None else self.resource.status_reason,
            observed_generation=self.generation,
            retries=0,
            last_error=None,
            finish=_Finish(succeeded=True, error=None),
        )

    async def fail(self, exc: ProviderError) -> None:
        error = {"code": exc.code, "message": exc.message}
        await self.save(
            status=ResourceStatus.error.value,
            reason=failure_reason(exc),
            retries=0,
            last_error=error,
            finish=_Finish(succeeded=False, error=error),
        )

    async def retry_later(self, exc: TransientProviderError) -> Requeue | None:
        """Backs off, or gives up (None) after ``reconcile_max_retries`` in a row."""
        settings = self.runtime.settings
        retries = self.resource.retries + 1
        if retries > settings.reconcile_max_retries:
            await self.fail(
                TransientProviderError(
                    f"gave up after {settings.reconcile_max_retries} retries: {exc.message}",
                    code=exc.code,
                )
            )
            return None
        delay = backoff(
            retries,
            base=settings.reconcile_retry_base_seconds,
            cap=settings.reconcile_retry_max_seconds,
        )
        await self.save(
            retries=retries,
            last_error={"code": exc.code, "message": exc.message, "retriable": True},
            progress=f"provider busy ({exc.code}); retry {retries} in {delay:.1f}s",
        )
        log.info(
            "reconcile_retry",
            resource_id=str(self.resource.id),
            code=exc.code,
            retry=retries,
            delay=round(delay, 2),
        )
        return Requeue(after=delay)


_RESOURCES = cast(Table, Resource.__table__)
_OPERATIONS = cast(Table, Operation.__table__)
_EVENTS = cast(Table, ResourceEvent.__table__)


def _save_statement(
    work: ReconcilePass,
    *,
    status: str | None,
    reason: str | None,
    event_type: str,
    progress: str | None,
    operation_params: Mapping[str, Any] | None,
    finish: _Finish | None,
    fields: Mapping[str, Any],
) -> Select[Any]:
    """``ReconcilePass.save`` as one statement: the resource row locked (``old``, what it
    returns), then data-modifying CTEs that all see that row. The resource is updated
    only when a value differs, as the ORM would; the event only when the status or its
    reason changes (drift is always recorded)."""
    old = select(_RESOURCES).where(_RESOURCES.c.id == work.resource.id).with_for_update().cte("old")
    current = old.c.generation == work.generation
    writes: list[CTE] = []
    # None is SQL NULL, in what is written as in what it is compared with (bound to a JSONB
    # column, None would be JSON's null, which differs from NULL at every save).
    values: dict[Any, Any] = {
        _RESOURCES.c[name]: null() if value is None else value for name, value in fields.items()
    }
    differs = [_RESOURCES.c[name].is_distinct_from(value) for name, value in fields.items()]
    operation_id = work.operation.id if work.operation is not None else None
    if status is not None:
        values[_RESOURCES.c.status] = case((current, status), else_=_RESOURCES.c.status)
        values[_RESOURCES.c.status_reason] = case(
            (current, reason), else_=_RESOURCES.c.status_reason
        )
        changes = or_(
            old.c.status.is_distinct_from(status), old.c.status_reason.is_distinct_from(reason)
        )
        differs.append(and_(current, changes))
        event = select(
            old.c.project_id,
            old.c.id,
            old.c.kind,
            literal(operation_id, UUID(as_uuid=True)),
            literal(event_type, String),
            old.c.status,
            literal(status, String),
            literal(reason, Text),
        ).where(current, changes if event_type == "status_changed" else true())
        writes.append(
            insert(_EVENTS)
            .from_select(
                [
                    "project_id",
                    "resource_id",
                    "resource_kind",
                    "operation_id",
                    "type",
                    "from_status",
                    "to_status",
                    "reason",
                ],
                event,
            )
            .cte("event")
        )
    if values:
        writes.append(
            update(_RESOURCES)
            .where(_RESOURCES.c.id == old.c.id, or_(*differs))
            .values(values)
            .cte("resource")
        )
    if work.operation is not None:
        writes.append(_operation_update(old, work.operation.id, progress, operation_params, finish))
    return select(old).add_cte(*writes)


def _operation_update(
    old: CTE,
    operation_id: uuid.UUID,
    progress: str | None,
    operation_params: Mapping[str, Any] | None,
    finish: _Finish | None,
) -> CTE:
    """The active operation marked running (on the pass's first save), its progress, its
    parameters, and its end when ``finish`` and it targets the resource's generation."""
    ops = _OPERATIONS
    pending = ops.c.status == OperationStatus.pending.value
    values: dict[Any, Any] = {
        ops.c.status: case((pending, OperationStatus.running.value), else_=ops.c.status),
        ops.c.started_at: case((pending, func.now()), else_=ops.c.started_at),
    }
    if progress:
        values[ops.c.progress] = progress[:200]
    if operation_params:
        values[ops.c.params] = ops.c.params.op("||")(literal(dict(operation_params), JSONB))
    if finish is not None:
        done = ops.c.target_generation == old.c.generation
        outcome = OperationStatus.succeeded if finish.succeeded else OperationStatus.failed
        values[ops.c.status] = case(
            (done, outcome.value), (pending, OperationStatus.running.value), else_=ops.c.status
        )
        error = null() if finish.error is None else literal(finish.error, JSONB)
        values[ops.c.error] = case((done, error), else_=ops.c.error)
        values[ops.c.progress] = case(
            (done, null()), else_=values.get(ops.c.progress, ops.c.progress)
        )
        values[ops.c.finished_at] = case((done, func.now()), else_=ops.c.finished_at)
    return (
        update(ops)
        .where(
            ops.c.id == operation_id,
            ops.c.resource_id == old.c.id,
            ops.c.status.in_(ACTIVE_OPERATION),
        )
        .values(values)
        .cte("operation")
    )


def failure_reason(exc: ProviderError) -> str:
    return f"{exc.message} ({exc.code})"


@contextlib.asynccontextmanager
async def _exclusively(
    runtime: CloudRuntime, resource_id: uuid.UUID
) -> AsyncIterator[AsyncConnection | None]:
    """The lock's connection while the lock is held; None when another pass holds it."""
    key = func.hashtextextended(f"lariba:resource:{resource_id}", 0)
    # A session-level lock needs no transaction around it: autocommit spares two.
    async with runtime.locks.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        acquired = bool((await connection.execute(select(func.pg_try_advisory_lock(key)))).scalar())
        try:
            yield connection if acquired else None
        finally:
            if acquired:
                await connection.execute(select(func.pg_advisory_unlock(key)))


async def _load(
    connection: AsyncConnection, resource_id: uuid.UUID
) -> tuple[Resource | None, Operation | None]:
    """Reads only, on the lock's connection (autocommit: no transaction, no second
    connection); the pass's first save marks its operation running."""
    active = and_(Operation.resource_id == Resource.id, Operation.status.in_(ACTIVE_OPERATION))
    async with AsyncSession(bind=connection, expire_on_commit=False) as session:
        row = (
            await session.execute(
                select(Resource, Operation)
                .outerjoin(Operation, active)
                .where(Resource.id == resource_id)
            )
        ).one_or_none()
        if row is None:
            return None, None
        return row[0], row[1]


async def reconcile_once(
    runtime: CloudRuntime, kinds: Mapping[str, ResourceKind], resource_id: uuid.UUID
) -> Outcome | None:
    """One pass over the resource; returns when to look again (None: not needed)."""
    async with _exclusively(runtime, resource_id) as connection:
        if connection is None:
            log.info("reconcile_pass_skipped", resource_id=str(resource_id))
            return Requeue(after=runtime.settings.reconcile_poll_seconds)
        log.debug("reconcile_pass_started", resource_id=str(resource_id), **_clock())
        outcome: Outcome | None = None
        try:
            outcome = await _pass(runtime, kinds, resource_id, connection)
        finally:
            log.debug(
                "reconcile_pass_finished",
                resource_id=str(resource_id),
                outcome=type(outcome).__name__,
                **_clock(),
            )
        return outcome


def _clock() -> dict[str, float | int]:
    """Where and when, comparable across the processes of one machine."""
    return {"pid": os.getpid(), "monotonic": time.monotonic()}


async def _pass(
    runtime: CloudRuntime,
    kinds: Mapping[str, ResourceKind],
    resource_id: uuid.UUID,
    connection: AsyncConnection,
) -> Outcome | None:
    resource, operation = await _load(connection, resource_id)
    if resource is None:
        return None
    if resource.status == ResourceStatus.deleted.value and operation is None:
        return None
    work = ReconcilePass(runtime, resource, operation, connection)
    started = time.perf_counter()
    result = "error"  # an unexpected exception (database away, a bug): the job is retried
    try:
        try:
            outcome = await kinds[resource.kind].reconcile(work)
        except TransientProviderError as exc:
            requeue = await work.retry_later(exc)
            result = "retrying" if requeue is not None else "failed"
            return requeue
        except PermanentProviderError as exc:
            log.warning(
                "reconcile_failed", resource_id=str(resource_id), code=exc.code, error=exc.message
            )
            await work.fail(exc)
            result = "failed"
            return None
        if isinstance(outcome, Converged):
            await work.converge(outcome.status)
            result = "converged"
            return None
        if work.resource.retries:
            await work.save(retries=0, last_error=None)
        elif work.has_notes:
            await work.save()
        result = "requeued"
        return outcome
    finally:
        RECONCILE_PASS_DURATION.labels(resource.kind, result).observe(time.perf_counter() - started)


def reconciler_tasks(runtime: CloudRuntime, kinds: Sequence[ResourceKind]) -> TaskRegistrar:
    by_name = {kind.name: kind for kind in kinds}

    def register(app: procrastinate.App) -> None:
        @app.task(
            name=RECONCILE_TASK,
            pass_context=True,
            # Only unexpected failures (database away, a bug) reach procrastinate's retry;
            # provider errors are handled by the pass.
            retry=procrastinate.RetryStrategy(max_attempts=20, exponential_wait=2),
        )
        async def reconcile_resource(context: JobContext, resource_id: str) -> None:
            ident = uuid.UUID(resource_id)
            outcome = await reconcile_once(runtime, by_name, ident)
            if isinstance(outcome, Requeue):
                locks = reconcile_locks(ident)
                deferrer = context.app.configure_task(
                    RECONCILE_TASK,
                    schedule_in={"seconds": outcome.after},
                    lock=locks["lock"],
                    queueing_lock=locks["queueing_lock"],
                )
                with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
                    # Already queued: that pass will look at the latest state.
                    await deferrer.defer_async(resource_id=resource_id)

        @app.periodic(cron="* * * * *", periodic_id="resync-resources")
        @app.task(name=RESYNC_TASK, queueing_lock=RESYNC_TASK, pass_context=True)
        async def resync_resources(context: JobContext, timestamp: int) -> int:
            return await resync(runtime, kinds, context.app)

    return register


async def resync(
    runtime: CloudRuntime, kinds: Sequence[ResourceKind], jobs: procrastinate.App
) -> int:
    """Queues a reconcile of every resource that drifted at the provider, and of every
    resource whose operation has no job left (its job ran out of retries)."""
    ids: set[uuid.UUID] = set()
    for kind in kinds:
        try:
            ids.update(await kind.drifted(runtime))
        except ProviderError as exc:
            log.warning("resync_inventory_failed", kind=kind.name, code=exc.code)
    async with runtime.sessionmaker.begin() as session:
        no_job = text(
            "NOT EXISTS (SELECT 1 FROM procrastinate_jobs j"
            " WHERE j.lock = 'resource:' || operations.resource_id::text"
            " AND j.status IN ('todo', 'doing'))"
        )
        orphaned_operations = await session.execute(
            select(Operation.resource_id).where(Operation.status.in_(ACTIVE_OPERATION), no_job)
        )
        ids.update(orphaned_operations.scalars())
        for resource_id in ids:
            await enqueue_reconcile(session, jobs, resource_id, bring_forward=False)
    return len(ids)
