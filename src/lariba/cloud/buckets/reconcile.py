"""How the reconciler makes a bucket at the provider match its record, and keeps the
bucket's byte count (its ``storage_bytes`` usage) in step with the provider."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, select

from lariba.cloud.buckets.models import BucketUpload
from lariba.cloud.engine.models import DesiredState, Resource, ResourceStatus
from lariba.cloud.engine.reconciler import Converged, Outcome, ReconcilePass, failure_reason
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.failpoints import failpoint
from lariba.providers.base import PermanentProviderError, ProviderError, ProviderNotFound
from lariba.providers.storage import BucketSpec, ObservedBucket, StorageProvider, bucket_name

KIND = "bucket"
_LIVE = (ResourceStatus.available.value, ResourceStatus.modifying.value)

log = structlog.get_logger(__name__)


def storage_of(runtime: CloudRuntime) -> StorageProvider:
    storage = runtime.provider.storage
    if storage is None:
        raise PermanentProviderError(
            f"the {runtime.provider.name} provider offers no storage", code="NotOffered"
        )
    return storage


class BucketKind:
    name = KIND

    async def reconcile(self, work: ReconcilePass) -> Outcome:
        storage = storage_of(work.runtime)
        if work.resource.desired_state == DesiredState.deleted.value:
            return await _delete(work, storage)
        observed = await _ensure_created(work, storage)
        resource = work.resource
        provider_id = observed.provider_id
        wanted = bool(resource.spec.get("versioning"))
        if observed.versioning != wanted:
            await work.save(progress=f"turning versioning {'on' if wanted else 'off'}")
            await storage.set_versioning(
                region=resource.region, provider_id=provider_id, enabled=wanted
            )
        stats = await storage.bucket_stats(region=resource.region, provider_id=provider_id)
        await work.save(
            status=ResourceStatus.available.value,
            reason=None,
            observed={
                "versioning": wanted,
                "objects": stats.objects,
                "bytes": stats.bytes,
                "observed_at": datetime.now(UTC).isoformat(),
            },
            usage={**work.resource.usage, "storage_bytes": stats.bytes},
        )
        return Converged()

    async def drifted(self, runtime: CloudRuntime) -> Sequence[uuid.UUID]:
        """Buckets gone at the provider, and buckets whose byte count changed (objects
        uploaded straight to the provider at presigned URLs): their pass refreshes it.
        Runs the provider's storage check first (leftovers of interrupted writes)."""
        storage = runtime.provider.storage
        if storage is None:
            return []
        await storage.check()
        await expire_abandoned_uploads(runtime, storage)
        async with runtime.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(
                        Resource.id, Resource.region, Resource.provider_id, Resource.usage
                    ).where(
                        Resource.kind == KIND,
                        Resource.status.in_(_LIVE),
                        Resource.provider == runtime.provider.name,
                        Resource.provider_id.is_not(None),
                    )
                )
            ).all()
        drifted: list[uuid.UUID] = []
        for region in {row.region for row in rows}:
            live = await storage.list_buckets(region=region)
            for row in rows:
                if row.region != region:
                    continue
                if row.provider_id not in live:
                    drifted.append(row.id)
                    continue
                stats = await storage.bucket_stats(region=region, provider_id=row.provider_id)
                if stats.bytes != int(row.usage.get("storage_bytes", 0)):
                    drifted.append(row.id)
        return drifted


def bucket_spec(resource: Resource) -> BucketSpec:
    return BucketSpec(
        resource_id=resource.id,
        project_id=resource.project_id,
        name=resource.name,
        region=resource.region,
        versioning=bool(resource.spec.get("versioning")),
    )


async def _ensure_created(work: ReconcilePass, storage: StorageProvider) -> ObservedBucket:
    """The bucket at the provider. Its name comes from the resource id, so a create
    repeated after a crash finds the bucket the first one made."""
    resource = work.resource
    if resource.provider_id is not None:
        try:
            return await storage.describe_bucket(
                region=resource.region, provider_id=resource.provider_id
            )
        except ProviderNotFound:
            gone = PermanentProviderError("deleted outside Lariba", code="BucketGone")
            await work.save(
                status=ResourceStatus.error.value, reason=failure_reason(gone), event_type="drift"
            )
            raise gone from None
    await work.save(
        create_attempts=resource.create_attempts + 1,
        status=ResourceStatus.provisioning.value,
        progress="creating the bucket at the provider",
    )
    observed = await storage.create_bucket(bucket_spec(resource))
    failpoint("bucket-created")
    await work.save(provider_id=observed.provider_id)
    return observed


async def _delete(work: ReconcilePass, storage: StorageProvider) -> Outcome:
    resource = work.resource
    provider_id = resource.provider_id
    if provider_id is None and resource.create_attempts > 0:
        provider_id = bucket_name(resource.id)
    if provider_id is not None:
        force = bool(work.operation.params.get("force")) if work.operation else False
        await work.save(progress="deleting the bucket" + (" and its objects" if force else ""))
        await storage.delete_bucket(region=resource.region, provider_id=provider_id, force=force)
    async with work.runtime.sessionmaker.begin() as session:
        await session.execute(delete(BucketUpload).where(BucketUpload.bucket_id == resource.id))
    await work.save(
        status=ResourceStatus.deleted.value,
        deleted_at=datetime.now(UTC),
        usage={**resource.usage, "storage_bytes": 0},
    )
    return Converged()


async def expire_abandoned_uploads(runtime: CloudRuntime, storage: StorageProvider) -> int:
    """Aborts the multipart uploads left unfinished for longer than
    ``multipart_upload_ttl_seconds`` (their parts hold storage and quota); returns how
    many. One the provider will not abort now is tried again at the next resync."""
    cutoff = datetime.now(UTC) - timedelta(seconds=runtime.settings.multipart_upload_ttl_seconds)
    async with runtime.sessionmaker() as session:
        abandoned = (
            await session.execute(
                select(BucketUpload, Resource.region, Resource.provider_id)
                .join(Resource, Resource.id == BucketUpload.bucket_id)
                .where(BucketUpload.created_at < cutoff)
                .limit(500)
            )
        ).all()
    expired = 0
    for upload, region, provider_id in abandoned:
        if provider_id is not None:
            try:
                await storage.abort_multipart_upload(
                    region=region,
                    provider_id=provider_id,
                    key=upload.key,
                    upload_id=upload.provider_upload_id,
                )
            except ProviderError as exc:
                log.warning(
                    "multipart_upload_expiry_failed", upload_id=str(upload.id), code=exc.code
                )
                continue
        async with runtime.sessionmaker.begin() as session:
            await session.execute(delete(BucketUpload).where(BucketUpload.id == upload.id))
        log.info(
            "multipart_upload_expired", upload_id=str(upload.id), bucket_id=str(upload.bucket_id)
        )
        expired += 1
    return expired
