"""The jobs of a dead worker are recovered even when another job of the same subject was
queued while they ran: the two must not wait for each other forever."""

from __future__ import annotations

import procrastinate
import psycopg

from lariba.core.jobs import JobQueue, libpq_url, retry_stalled

LOCK = "resource:r1"
QUEUEING_LOCK = "reconcile:r1"


def register_test_tasks(app: procrastinate.App) -> None:
    @app.task(name="tests_reconcile")
    async def reconcile(subject: str) -> None:
        """Never run here: the test fetches its jobs by hand."""


def _jobs(database_url: str) -> list[tuple[int, str, int | None]]:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT id, status::text, worker_id FROM procrastinate_jobs"
            " WHERE task_name = 'tests_reconcile' ORDER BY id"
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


async def test_stalled_job_superseded_by_a_queued_one_lets_that_one_run(
    test_database_url: str,
) -> None:
    jobs = JobQueue(test_database_url, registrars=[register_test_tasks])
    await jobs.open()
    try:
        manager = jobs.app.job_manager
        task = jobs.app.tasks["tests_reconcile"]
        # A worker takes the first pass, then dies (its heartbeat stops).
        dead = await manager.register_worker()
        stalled = await task.configure(lock=LOCK, queueing_lock=QUEUEING_LOCK).defer_async(
            subject="r1"
        )
        fetched = await manager.fetch_job(queues=None, worker_id=dead)
        assert fetched is not None and fetched.id == stalled
        # While it "runs", a user's change queues the next pass of the same subject.
        waiting = await task.configure(lock=LOCK, queueing_lock=QUEUEING_LOCK).defer_async(
            subject="r1"
        )
        with psycopg.connect(libpq_url(test_database_url), autocommit=True) as connection:
            connection.execute(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"
                " WHERE id = %s",
                (dead,),
            )

        await retry_stalled(manager, after_seconds=60)

        # The dead worker's pass is ended (the waiting one does its work) and no longer
        # holds the subject's lock: a live worker gets the waiting pass.
        assert _jobs(test_database_url) == [(stalled, "aborted", dead), (waiting, "todo", None)]
        alive = await manager.register_worker()
        taken = await manager.fetch_job(queues=None, worker_id=alive)
        assert taken is not None and taken.id == waiting
    finally:
        await jobs.close()
