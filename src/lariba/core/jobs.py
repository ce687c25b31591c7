"""Durable background jobs in PostgreSQL (procrastinate), deferred inside the caller's
transaction: a rolled-back request leaves no job, a committed one always has its job.

Services register their tasks with a function taking the procrastinate App (see
``register_core_tasks``): tasks are declared per App, because a task object remembers the
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
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger(__name__)

# A job whose worker has sent no heartbeat for this long died with its worker (SIGKILL,
# host lost): it is put back in the queue. Procrastinate's heartbeat is every 10 s.
STALLED_AFTER_SECONDS = 60

TaskRegistrar = Callable[[procrastinate.App], None]


def libpq_url(database_url: str) -> str:
    """The database URL as psycopg/libpq read it (no SQLAlchemy driver suffix)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def register_core_tasks(app: procrastinate.App) -> None:
    @app.periodic(cron="* * * * *", periodic_id="retry-stalled-jobs")
    @app.task(name="retry_stalled_jobs", queueing_lock="retry_stalled_jobs", pass_context=True)
    async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
        """Puts back in the queue the jobs of workers that died mid-job."""
        manager = context.app.job_manager
        stalled = list(
            await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS)
        )
        for job in stalled:
            log.warning("job_stalled_retrying", job_id=job.id, task=job.task_name)
            await manager.retry_job(job)
        return len(stalled)


class JobQueue:
    """The process's handle on the job tables: defers jobs and runs a worker."""

    def __init__(self, database_url: str, *, registrars: Sequence[TaskRegistrar] = ()) -> None:
        self._pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=4,
            open=False,
            check=AsyncConnectionPool.check_connection,
        )
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector())
        for register in (register_core_tasks, *registrars):
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

    async def defer(self, session: AsyncSession, task_name: str, **kwargs: Any) -> int:
        """Enqueues ``task_name`` in the transaction of ``session``: the job exists if and
        only if that transaction commits. Returns the job id."""
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        job_id: int = await self.app.configure_task(
            task_name, connection=raw.driver_connection
        ).defer_async(**kwargs)
        return job_id

    def start_worker(self, *, concurrency: int = 4) -> None:
        """Runs a worker in this process's event loop until ``stop_worker``."""
        self._worker = asyncio.create_task(
            self.app.run_worker_async(
                concurrency=concurrency, install_signal_handlers=False, wait=True
            ),
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
        await self.app.run_worker_async(concurrency=concurrency, install_signal_handlers=True)
