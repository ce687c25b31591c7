"""Bucket use cases: every change is an operation the reconciler carries out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.buckets.errors import provider_problem
from lariba.cloud.buckets.reconcile import KIND
from lariba.cloud.buckets.schemas import BucketCreate, BucketOut
from lariba.cloud.engine.errors import InvalidState, ProviderUnavailable
from lariba.cloud.engine.models import DesiredState, OperationType, Resource, ResourceStatus
from lariba.cloud.engine.operations import (
    begin_operation,
    latest_operation,
    refuse_if_busy,
)
from lariba.cloud.engine.resources import (
    audit_change,
    create_resource,
    list_resources,
    load_resource,
    refuse_deleted,
    region_of,
    relabel,
)
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.cloud.engine.schemas import OperationOut
from lariba.core.errors import Conflict, LaribaError
from lariba.core.pagination import Page, PageRequest
from lariba.identity.audit import RequestContext
from lariba.identity.authz import ProjectAccess
from lariba.providers.base import ProviderError, TransientProviderError
from lariba.providers.storage import StorageProvider


class StorageNotOffered(LaribaError):
    status = 501
    code = "storage_not_offered"
    title = "Storage not offered"


def storage_of(cloud: CloudRuntime) -> StorageProvider:
    storage = cloud.provider.storage
    if storage is None:
        raise StorageNotOffered(f"The {cloud.provider.name} provider offers no object storage.")
    return storage


async def create_bucket(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    body: BucketCreate,
    ctx: RequestContext,
) -> OperationOut:
    storage_of(cloud)
    _resource, operation = await create_resource(
        session,
        cloud=cloud,
        jobs=jobs,
        access=access,
        ctx=ctx,
        kind=KIND,
        name=body.name,
        region=region_of(cloud, body.region),
        spec={"versioning": body.versioning},
        usage={"buckets": 1, "storage_bytes": 0},
        labels=body.labels,
        desired_state=DesiredState.available,
    )
    return OperationOut.of(operation)


async def load_bucket(
    session: AsyncSession, *, access: ProjectAccess, bucket_id: uuid.UUID, lock: bool = False
) -> Resource:
    return await load_resource(session, access=access, kind=KIND, resource_id=bucket_id, lock=lock)


async def live_bucket(
    session: AsyncSession, *, access: ProjectAccess, bucket_id: uuid.UUID
) -> tuple[Resource, str]:
    """The bucket and its provider id, when it exists at the provider and is not being
    deleted: 409 ``invalid_state`` otherwise."""
    resource = await load_bucket(session, access=access, bucket_id=bucket_id)
    if resource.provider_id is None or resource.status not in (
        ResourceStatus.available.value,
        ResourceStatus.modifying.value,
    ):
        raise InvalidState(
            f"Bucket {resource.id} is {resource.status}; objects can be used once it is available.",
            extra={"resource_status": resource.status},
        )
    return resource, resource.provider_id


async def get_bucket(cloud: CloudRuntime, resource: Resource) -> BucketOut:
    """The bucket with its object count and bytes as the provider reports them now (as
    last observed when the provider does not answer)."""
    storage = cloud.provider.storage
    if (
        storage is None
        or resource.provider_id is None
        or resource.status
        not in (
            ResourceStatus.available.value,
            ResourceStatus.modifying.value,
        )
    ):
        return BucketOut.of(resource)
    try:
        stats = await storage.bucket_stats(region=resource.region, provider_id=resource.provider_id)
    except ProviderError:
        return BucketOut.of(resource)
    return BucketOut.of(resource, objects=stats.objects, size=stats.bytes)


async def list_buckets(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    page: PageRequest,
    statuses: Sequence[str],
    labels: Sequence[str],
) -> Page[BucketOut]:
    resources, cursor = await list_resources(
        session, access=access, kind=KIND, page=page, statuses=statuses, labels=labels
    )
    return Page(items=[BucketOut.of(r) for r in resources], next_cursor=cursor)


async def update_labels(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    labels: dict[str, str],
    ctx: RequestContext,
) -> OperationOut:
    resource = await load_bucket(session, access=access, bucket_id=bucket_id, lock=True)
    operation = await relabel(session, access=access, resource=resource, labels=labels, ctx=ctx)
    return OperationOut.of(operation)


async def set_versioning(
    session: AsyncSession,
    *,
    jobs: procrastinate.App,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    enabled: bool,
    ctx: RequestContext,
) -> OperationOut:
    resource = await load_bucket(session, access=access, bucket_id=bucket_id, lock=True)
    await refuse_if_busy(session, resource)
    refuse_deleted(resource)
    if bool(resource.spec.get("versioning")) == enabled:
        raise InvalidState(
            f"Versioning of bucket {resource.id} is already {'on' if enabled else 'off'}.",
            code="versioning_unchanged",
        )
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.update,
        actor=access.principal.actor,
        status=ResourceStatus.modifying.value if resource.provider_id else None,
        params={"versioning": enabled},
    )
    resource.spec = {**resource.spec, "versioning": enabled}
    await audit_change(
        session,
        ctx=ctx,
        access=access,
        action="bucket.versioning",
        resource=resource,
        details={"versioning": enabled},
    )
    return OperationOut.of(operation)


async def delete_bucket(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    force: bool,
    ctx: RequestContext,
) -> OperationOut:
    """Deletes the bucket: refused (409 ``bucket_not_empty``) while it holds objects,
    unless ``force``, which deletes them too. Deleting again answers the delete under
    way or done; a delete that failed is retried."""
    resource = await load_bucket(session, access=access, bucket_id=bucket_id, lock=True)
    if resource.desired_state == DesiredState.deleted.value:
        previous = await latest_operation(session, resource, OperationType.delete)
        if previous is not None and (
            resource.status != ResourceStatus.error.value or previous.status != "failed"
        ):
            return OperationOut.of(previous)
    storage = cloud.provider.storage
    if not force and storage is not None and resource.provider_id is not None:
        try:
            stats = await storage.bucket_stats(
                region=resource.region, provider_id=resource.provider_id
            )
        except TransientProviderError as exc:
            raise ProviderUnavailable(
                f"The provider did not answer ({exc.code}); try again shortly.",
                headers={"Retry-After": "5"},
            ) from exc
        except ProviderError as exc:
            if exc.code != "NoSuchBucket":
                raise provider_problem(exc) from exc
        else:
            if stats.objects:
                raise Conflict(
                    f"Bucket {resource.id} holds {stats.objects} objects ({stats.bytes} bytes); "
                    "delete them first, or delete with ?force=true to delete them too.",
                    code="bucket_not_empty",
                    extra={"objects": stats.objects, "bytes": stats.bytes},
                )
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.delete,
        actor=access.principal.actor,
        status=ResourceStatus.deleting.value,
        params={"force": force},
        supersede=True,
    )
    resource.desired_state = DesiredState.deleted.value
    await audit_change(
        session,
        ctx=ctx,
        access=access,
        action="bucket.delete",
        resource=resource,
        details={"force": force},
    )
    return OperationOut.of(operation)
