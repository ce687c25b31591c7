"""What the cloud service keeps per process: its provider, catalog and database access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lariba.core.jobs import JobQueue
from lariba.core.settings import Settings
from lariba.providers.base import Provider
from lariba.providers.catalog import Catalog


@dataclass(frozen=True)
class CloudRuntime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    provider: Provider
    catalog: Catalog


async def cloud_runtime(request: Request) -> CloudRuntime:
    runtime: CloudRuntime = request.app.state.cloud
    return runtime


async def job_queue(request: Request) -> JobQueue:
    jobs: JobQueue = request.app.state.jobs
    return jobs


Cloud = Annotated[CloudRuntime, Depends(cloud_runtime)]
Jobs = Annotated[JobQueue, Depends(job_queue)]
