"""Durable jobs: deferred in the caller's transaction, run by a worker in PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import procrastinate
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.app import create_app
from lariba.core.jobs import JobQueue
from lariba.core.settings import Settings
from tests.fixtures.database import TEST_SECRET_KEY

ran: list[str] = []


def register_test_tasks(app: procrastinate.App) -> None:
    @app.task(name="tests_record")
    async def record(value: str) -> None:
        ran.append(value)


async def _job_statuses(db: AsyncSession) -> list[tuple[str, str]]:
    await db.rollback()
    rows = await db.execute(text("SELECT task_name, status::text FROM procrastinate_jobs"))
    return [(row[0], row[1]) for row in rows]


async def test_rolled_back_transaction_leaves_no_job(
    settings: Settings, test_database_url: str, db: AsyncSession
) -> None:
    jobs = JobQueue(test_database_url, registrars=[register_test_tasks])
    app = create_app(settings, database_url=test_database_url, run_worker=False)
    await jobs.open()
    try:
        async with app.state.sessionmaker() as session:
            await jobs.defer(session, "tests_record", value="rolled back")
            await session.rollback()
        assert await _job_statuses(db) == []
        async with app.state.sessionmaker() as session:
            await jobs.defer(session, "tests_record", value="committed")
            await session.commit()
        assert await _job_statuses(db) == [("tests_record", "todo")]
    finally:
        await jobs.close()
        await app.state.engine.dispose()


async def test_in_process_worker_runs_committed_jobs(
    settings: Settings, test_database_url: str, db: AsyncSession
) -> None:
    ran.clear()
    jobs = JobQueue(test_database_url, registrars=[register_test_tasks])
    app = create_app(settings, database_url=test_database_url, run_worker=False)
    await jobs.open()
    jobs.start_worker(concurrency=1)
    try:
        async with app.state.sessionmaker() as session:
            await jobs.defer(session, "tests_record", value="hello")
            await session.commit()
        for _ in range(100):
            if ran:
                break
            await asyncio.sleep(0.1)
        assert ran == ["hello"]
        assert ("tests_record", "succeeded") in await _job_statuses(db)
    finally:
        await jobs.close()
        await app.state.engine.dispose()


@pytest.mark.parametrize("stop", [signal.SIGTERM])
async def test_lariba_worker_runs_jobs_and_stops_on_sigterm(
    settings: Settings, test_database_url: str, db: AsyncSession, stop: signal.Signals
) -> None:
    env = {
        **os.environ,
        "LARIBA_DATABASE_URL": test_database_url,
        "LARIBA_SECRET_KEY": TEST_SECRET_KEY,
        "LARIBA_DATA_DIR": str(settings.data_dir),
    }
    worker = subprocess.Popen(  # noqa: ASYNC220 - a real worker process
        [sys.executable, "-m", "lariba.cli.main", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        jobs = JobQueue(test_database_url)
        await jobs.open()
        app = create_app(settings, database_url=test_database_url, run_worker=False)
        async with app.state.sessionmaker() as session:
            # Its own queueing lock: the worker's periodic defer of the same task must not
            # collide with this one.
            connection = await (await session.connection()).get_raw_connection()
            await jobs.app.configure_task(
                "retry_stalled_jobs",
                queueing_lock="test-retry-stalled",
                connection=connection.driver_connection,
            ).defer_async(timestamp=0)
            await session.commit()
        await jobs.close()
        await app.state.engine.dispose()
        succeeded = ("retry_stalled_jobs", "succeeded")
        for _ in range(150):
            if succeeded in await _job_statuses(db):
                break
            await asyncio.sleep(0.1)
        assert succeeded in await _job_statuses(db)
        worker.send_signal(stop)
        assert await asyncio.to_thread(worker.wait, 30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


async def test_deferring_a_job_already_queued_keeps_the_transaction(
    settings: Settings, test_database_url: str, db: AsyncSession
) -> None:
    jobs = JobQueue(test_database_url, registrars=[register_test_tasks])
    app = create_app(settings, database_url=test_database_url, run_worker=False)
    await jobs.open()
    try:
        async with app.state.sessionmaker() as session:
            first = await jobs.defer(session, "tests_record", queueing_lock="once", value="a")
            second = await jobs.defer(session, "tests_record", queueing_lock="once", value="b")
            # The refused insert must not have aborted the caller's transaction.
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
            await session.commit()
        assert first is not None and second is None
        assert await _job_statuses(db) == [("tests_record", "todo")]
    finally:
        await jobs.close()
        await app.state.engine.dispose()
