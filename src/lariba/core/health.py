"""Liveness and readiness probes, and the Prometheus scrape endpoint."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lariba.core.errors import DATABASE_RETRY_AFTER_SECONDS, problem_response
from lariba.core.jobs import JobQueue
from lariba.core.metrics import CONTENT_TYPE, JobQueueSnapshot, exposition, read_job_queue

log = structlog.get_logger(__name__)

router = APIRouter(tags=["health"])

_READY_TIMEOUT_SECONDS = 3.0
# Well under Prometheus's default 10 s scrape timeout: a slow database costs the queue
# gauges of one scrape (lariba_job_queue_up 0), never the whole scrape.
_QUEUE_READ_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="Alive: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Ready: the database is reachable",
    responses={503: {"description": "The database is not reachable"}},
)
async def readyz(request: Request) -> Health | JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    try:
        async with asyncio.timeout(_READY_TIMEOUT_SECONDS), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # a timeout, a refused connection, a failed query: not ready
        return problem_response(
            request,
            status=503,
            code="database_unavailable",
            title="Service unavailable",
            detail="The database is not reachable.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Platform metrics in the Prometheus text format",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Unauthenticated, as Prometheus expects: serve it on an address only the monitoring
    system reaches (see docs/operations.md)."""
    engine: AsyncEngine = request.app.state.engine
    jobs: JobQueue = request.app.state.jobs
    try:
        counts = await read_job_queue(engine, timeout_seconds=_QUEUE_READ_TIMEOUT_SECONDS)
    except Exception as exc:  # a timeout, a refused connection: the rest is still worth having
        log.warning("job_queue_metrics_unavailable", error_type=type(exc).__name__)
        counts = None
    # A task is listed under its aliases too (procrastinate's builtins): once is enough.
    tasks = {(task.queue, task.name) for task in jobs.app.tasks.values()}
    snapshot = JobQueueSnapshot(counts, tasks=tasks)
    return Response(exposition(snapshot), media_type=CONTENT_TYPE)
