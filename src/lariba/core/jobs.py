"""Durable background jobs in PostgreSQL (procrastinate), deferred inside the caller's
transaction: a rolled-back request leaves no job, a committed one always has its job.

Services register their tasks with a function taking the procrastinate App (see
``_core_tasks``): tasks are declared per App, because a task object remembers the
one App it belongs to and a process may hold several (tests run two API replicas in one
process). Any number of ``lariba worker`` processes (or the worker inside ``lariba
serve``) run the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import procrastinate
import structlog
from procrastinate import JobContext
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger(__name__)

TaskRegistrar = Callable[[procrastinate.App], None]


def libpq_url(database_url: str) -> str:
    """The database URL as psycopg/libpq read it (no SQLAlchemy driver suffix)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def retry_stalled(manager: procrastinate.manager.JobManager, *, after_seconds: float) -> int:
    """Puts back in the queue the jobs of workers that died mid-job (no heartbeat for
    ``after_seconds``). Two workers may race on the same job: the loser's retry fails
    harmlessly because the job is no longer ``doing``. A stalled job whose work another
    queued job will do is ended instead."""
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=after_seconds))
    retried = 0
    for job in stalled:
        try:
            await manager.retry_job(job)
        except procrastinate.exceptions.UniqueViolation as exc:
            if exc.constraint_name != procrastinate.manager.QUEUEING_LOCK_CONSTRAINT:
                raise
            # While it ran, another job with its queueing lock was queued: that one does
            # the same work, but cannot start while this one holds their common ``lock``.
            # Left ``doing``, the pair would wait for each other forever.
            await _end_superseded(manager, job)
            continue
        except Exception as exc:  # another worker retried it first
            log.info("stalled_job_already_retried", job_id=job.id, error_type=type(exc).__name__)
            continue
        log.warning("job_stalled_retrying", job_id=job.id, task=job.task_name)
        retried += 1
    return retried


async def _end_superseded(
    manager: procrastinate.manager.JobManager, job: procrastinate.jobs.Job
) -> None:
    """Ends a stalled job another waiting job makes redundant (``aborted``), so that one
    can run."""
    assert job.id is not None  # a fetched job has its id
    try:
        await manager.finish_job_by_id_async(
            job.id, status=procrastinate.jobs.Status.ABORTED, delete_job=False
        )
    except Exception as exc:  # another worker ended it first
        log.info("stalled_job_already_retried", job_id=job.id, error_type=type(exc).__name__)
        return
    log.warning("job_stalled_superseded", job_id=job.id, task=job.task_name)


def _core_tasks(stalled_after_seconds: float) -> TaskRegistrar:
    def register(app: procrastinate.App) -> None:
        @app.periodic(cron="* * * * *", periodic_id="retry-stalled-jobs")
        @app.task(name="retry_stalled_jobs", queueing_lock="retry_stalled_jobs", pass_context=True)
        async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
            """The backstop of every worker's own watch (``JobQueue._watch_stalled``)."""
            return await retry_stalled(context.app.job_manager, after_seconds=stalled_after_seconds)

    return register


async def _defer(
    app: procrastinate.App,
    session: AsyncSession,
    task_name: str,
    lock: str | None,
    queueing_lock: str | None,
    kwargs: dict[str, Any],
) -> int:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    deferrer = app.configure_task(
        task_name, connection=raw.driver_connection, lock=lock, queueing_lock=queueing_lock
    )
    job_id: int = await deferrer.defer_async(**kwargs)
    return job_id


async def defer_in_transaction(
    app: procrastinate.App,
    session: AsyncSession,
    task_name: str,
    *,
    lock: str | None = None,
    queueing_lock: str | None = None,
    bring_forward: bool = True,
    first: bool = False,
    **kwargs: Any,
) -> int | None:
    """Enqueues ``task_name`` in the transaction of ``session``: the job exists if and
    only if that transaction commits. Returns the job id, or None when a job with the
    same ``queueing_lock`` is already waiting (that one will do the work); with
    ``bring_forward`` its scheduled time is moved up to now.

    Jobs sharing a ``lock`` never run at the same time, on any worker. ``first``: no job
    can hold this ``queueing_lock`` yet (its subject was just created), so no savepoint
    is needed to survive a refusal."""
    if first:
        return await _defer(app, session, task_name, lock, queueing_lock, kwargs)
    try:
        # A savepoint: the refused insert must not abort the caller's transaction. Asking
        # for the connection inside it is what makes SQLAlchemy emit the SAVEPOINT.
        async with session.begin_nested():
            job_id = await _defer(app, session, task_name, lock, queueing_lock, kwargs)
    except procrastinate.exceptions.AlreadyEnqueued:
        if bring_forward:
            await session.execute(
                text(
                    "UPDATE procrastinate_jobs SET scheduled_at = now() "
                    "WHERE queueing_lock = :lock AND status = 'todo' AND scheduled_at > now()"
                ),
                {"lock": queueing_lock},
            )
        return None
    return job_id


class JobQueue:
    """The process's handle on the job tables: defers jobs and runs a worker."""

    def __init__(
        self,
        database_url: str,
        *,
        registrars: Sequence[TaskRegistrar] = (),
        heartbeat_seconds: float = 10.0,
        stalled_after_seconds: float = 60.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self._pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=4,
            open=False,
            check=AsyncConnectionPool.check_connection,
        )
        self._heartbeat_seconds = heartbeat_seconds
        # New jobs wake a worker at once (LISTEN/NOTIFY); jobs that become due later (a
        # backoff, a stalled job put back) are only seen by polling.
        self._poll_seconds = poll_seconds
        self._stalled_after_seconds = stalled_after_seconds
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector())
        for register in (_core_tasks(stalled_after_seconds), *registrars):
            register(self.app)
        self._worker: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Opens the worker's connection pool without waiting for the database, so a
        process starting during a database outage still starts."""
        await self._pool.open(wait=False)
        await self.app.open_async(pool=self._pool)

    async def close(self) -> None:
        await self.stop_worker()
        await self.app.close_async()
        await self._pool.close()

    async def defer(
        self,
        session: AsyncSession,
        task_name: str,
        *,
        lock: str | None = None,
        queueing_lock: str | None = None,
        **kwargs: Any,
    ) -> int | None:
        """See ``defer_in_transaction``."""
        return await defer_in_transaction(
            self.app, session, task_name, lock=lock, queueing_lock=queueing_lock, **kwargs
        )

    def _worker_task(self, *, concurrency: int, install_signal_handlers: bool) -> Any:
        return self.app.run_worker_async(
            concurrency=concurrency,
            install_signal_handlers=install_signal_handlers,
            wait=True,
            update_heartbeat_interval=self._heartbeat_seconds,
            fetch_job_polling_interval=self._poll_seconds,
            stalled_worker_timeout=self._stalled_after_seconds,
        )

    async def _watch_stalled(self) -> None:
        """Every few seconds, re-queues the jobs of dead workers, so a crash is recovered
        within about ``stalled_after_seconds`` rather than at the next minute's cron."""
        interval = max(self._heartbeat_seconds, self._stalled_after_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                await retry_stalled(self.app.job_manager, after_seconds=self._stalled_after_seconds)
            except Exception as exc:  # the database may be away; try again next round
                log.warning("stalled_job_watch_failed", error_type=type(exc).__name__)

    async def _run(self, *, concurrency: int, install_signal_handlers: bool) -> None:
        watch = asyncio.create_task(self._watch_stalled(), name="lariba-stalled-job-watch")
        try:
            await self._worker_task(
                concurrency=concurrency, install_signal_handlers=install_signal_handlers
            )
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    def start_worker(self, *, concurrency: int = 4) -> None:
        """Runs a worker in this process's event loop until ``stop_worker``."""
        self._worker = asyncio.create_task(
            self._run(concurrency=concurrency, install_signal_handlers=False),
            name="lariba-job-worker",
        )

    async def stop_worker(self) -> None:
        if self._worker is None:
            return
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    async def run_worker(self, *, concurrency: int = 4) -> None:
        """Runs a worker in the foreground until SIGINT/SIGTERM (``lariba worker``)."""
        await self._run(concurrency=concurrency, install_signal_handlers=True)
