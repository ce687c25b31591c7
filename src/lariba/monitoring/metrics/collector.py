"""The collection of metric samples: every live resource of the deployment's provider, a
bounded batch at a time. Instances are measured by the provider's metrics part in one
batched call; buckets and databases one by one (a few at once) through their own parts.
A resource that cannot be measured is logged and skipped, never stopping the rest."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from lariba.cloud.engine.runtime import CloudRuntime
from lariba.monitoring.metrics import repository
from lariba.monitoring.metrics.repository import LiveResource
from lariba.providers.base import Provider
from lariba.providers.metrics import MeasuredInstance, Sample

log = structlog.get_logger(__name__)

# Buckets and databases measured at once: each is a provider call (an S3 listing, a query
# on the database server).
CONCURRENCY = 8


@dataclass
class Collection:
    resources: int = 0
    samples: int = 0
    failures: int = 0


async def collect(runtime: CloudRuntime, *, batch_size: int) -> Collection:
    """Samples every live resource once; each batch's samples commit on their own."""
    result = Collection()
    after: uuid.UUID | None = None
    while True:
        async with runtime.sessionmaker() as session:
            batch = await repository.live_resources(
                session, provider=runtime.provider.name, after=after, limit=batch_size
            )
        if not batch:
            return result
        samples = await measure(runtime.provider, batch, result)
        async with runtime.sessionmaker.begin() as session:
            result.samples += await repository.record(session, samples)
        result.resources += len(batch)
        after = batch[-1].id
        if len(batch) < batch_size:
            return result


async def measure(
    provider: Provider, batch: Sequence[LiveResource], result: Collection
) -> list[Sample]:
    samples: list[Sample] = []
    instances = [
        MeasuredInstance(r.id, r.region, r.provider_id) for r in batch if r.kind == "instance"
    ]
    if instances and provider.metrics is not None:
        try:
            samples += await provider.metrics.sample(instances)
        except Exception as exc:  # whatever it is, the batch's buckets and databases go on
            result.failures += len(instances)
            log.warning(
                "instance_metrics_failed",
                instances=len(instances),
                error_type=type(exc).__name__,
                error=str(exc),
            )
    limiter = asyncio.Semaphore(CONCURRENCY)

    async def one(resource: LiveResource) -> list[Sample]:
        async with limiter:
            try:
                return await _measure_one(provider, resource)
            except Exception as exc:  # whatever it is, one resource never stops the rest
                result.failures += 1
                log.warning(
                    "resource_metrics_failed",
                    resource_id=str(resource.id),
                    kind=resource.kind,
                    error_type=type(exc).__name__,
                    error=str(exc),
                )
                return []

    for measured in await asyncio.gather(*(one(r) for r in batch if r.kind != "instance")):
        samples += measured
    return samples


async def _measure_one(provider: Provider, resource: LiveResource) -> list[Sample]:
    if resource.kind == "bucket" and provider.storage is not None:
        stats = await provider.storage.bucket_stats(
            region=resource.region, provider_id=resource.provider_id
        )
        at = datetime.now(UTC)
        return [
            Sample(resource.id, "storage_bytes", float(stats.bytes), at),
            Sample(resource.id, "object_count", float(stats.objects), at),
        ]
    if resource.kind == "database" and provider.database is not None:
        metrics = await provider.database.metrics(
            region=resource.region, provider_id=resource.provider_id
        )
        at = datetime.now(UTC)
        return [
            Sample(resource.id, "size_bytes", float(metrics.size_bytes), at),
            Sample(resource.id, "connections", float(metrics.connections), at),
        ]
    return []
