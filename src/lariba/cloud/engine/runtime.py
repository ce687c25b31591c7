"""What the cloud service keeps per process: its provider, catalog and database access."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lariba.core.db import create_engine
from lariba.core.jobs import JobQueue
from lariba.core.settings import Settings
from lariba.providers.base import Provider
from lariba.providers.catalog import Catalog, load_catalog
from lariba.providers.factory import build_provider

# Called before a new resource is added, under the project's row lock and before anything
# reaches the provider: raises a LaribaError to refuse it. Other services plug their rules
# in here (monitoring: a budget that blocks provisioning) without the engine knowing them.
AdmissionCheck = Callable[[AsyncSession, "CloudRuntime", uuid.UUID, str], Awaitable[None]]


@dataclass(frozen=True)
class CloudRuntime:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    provider: Provider
    catalog: Catalog
    # Connections that hold the reconciler's per-resource advisory locks, one per pass a
    # worker may run at once: a pass holds its lock for its whole length while it works
    # through ``sessionmaker``, so sharing one pool could leave every connection holding
    # a lock and every pass waiting for a second connection.
    locks: AsyncEngine
    admission_checks: list[AdmissionCheck] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        database_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: Provider | None = None,
    ) -> CloudRuntime:
        return cls(
            settings=settings,
            sessionmaker=sessionmaker,
            provider=provider or build_provider(settings),
            catalog=load_catalog(settings.provider.value, settings.catalog_file),
            locks=create_engine(
                settings,
                database_url,
                pool_size=settings.worker_concurrency,
                max_overflow=0,
                pool_pre_ping=False,
            ),
        )

    async def close(self) -> None:
        await self.locks.dispose()


async def cloud_runtime(request: Request) -> CloudRuntime:
    runtime: CloudRuntime = request.app.state.cloud
    return runtime


async def job_queue(request: Request) -> JobQueue:
    jobs: JobQueue = request.app.state.jobs
    return jobs


Cloud = Annotated[CloudRuntime, Depends(cloud_runtime)]
Jobs = Annotated[JobQueue, Depends(job_queue)]
