"""The ``api_requests`` meter: each project's API requests, counted in memory by every API
process and added to ``usage_request_counts`` every few seconds. A request counts once
the project's access check let it through (``request.state.project_id``, set by the
project dependency and by signed object URLs): another tenant's id never counts against a
project. A process that dies loses at most its last few seconds of counts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 5.0


class RequestMeter:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._counts: Counter[tuple[uuid.UUID, datetime]] = Counter()
        self._task: asyncio.Task[None] | None = None

    def count(self, project_id: uuid.UUID) -> None:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self._counts[(project_id, hour)] += 1

    async def flush(self) -> int:
        """Adds what was counted to the database; returns the number of requests. When
        the database is away the counts are kept for the next flush."""
        counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        keys = list(counts)
        try:
            async with self._sessionmaker.begin() as session:
                await session.execute(
                    text(
                        "INSERT INTO usage_request_counts (project_id, hour, requests) "
                        "SELECT * FROM unnest(CAST(:projects AS uuid[]), "
                        "CAST(:hours AS timestamptz[]), CAST(:requests AS bigint[])) "
                        "AS u(project_id, hour, requests) "
                        # A project deleted meanwhile has no usage left to add to.
                        "WHERE EXISTS (SELECT 1 FROM projects p WHERE p.id = u.project_id) "
                        "ON CONFLICT (project_id, hour) DO UPDATE "
                        "SET requests = usage_request_counts.requests + EXCLUDED.requests"
                    ),
                    {
                        "projects": [project for project, _ in keys],
                        "hours": [hour for _, hour in keys],
                        "requests": [counts[key] for key in keys],
                    },
                )
        except Exception as exc:  # the database is away, or a project was just deleted
            self._counts.update(counts)
            log.warning("request_counts_not_saved", error_type=type(exc).__name__)
            return 0
        return sum(counts.values())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="request-meter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


class RequestMeterMiddleware:
    """Counts a request against the project it acted within, once it has been answered."""

    def __init__(self, app: ASGIApp, *, meter: RequestMeter) -> None:
        self.app = app
        self.meter = meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            project_id = scope.get("state", {}).get("project_id")
            if isinstance(project_id, uuid.UUID):
                self.meter.count(project_id)
