"""Object use cases: list, inspect, copy and delete objects, and hand out presigned
URLs (single uploads, multipart parts, downloads). Bytes never pass through here."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.buckets.errors import provider_problem
from lariba.cloud.buckets.models import BucketUpload
from lariba.cloud.buckets.schemas import (
    CopyRequest,
    ObjectOut,
    ObjectPage,
    PartPresignRequest,
    PresignOut,
    PresignRequest,
    UploadComplete,
    UploadCreate,
    UploadOut,
)
from lariba.cloud.buckets.service import live_bucket, storage_of
from lariba.cloud.engine import quotas
from lariba.cloud.engine.models import Resource
from lariba.cloud.engine.resources import audit_change
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.errors import InvalidInput, NotFound
from lariba.identity.audit import RequestContext
from lariba.identity.authz import ProjectAccess
from lariba.providers.base import ProviderError, ProviderNotFound
from lariba.providers.storage import PutRequest, UploadedPart

T = TypeVar("T")

MAX_LIST_LIMIT = 1000


async def _audit(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    access: ProjectAccess,
    resource: Resource,
    action: str,
    key: str,
    **details: object,
) -> None:
    """Object changes and handed-out URLs are audited on their bucket (``object.*``),
    as S3 data events would be: who read or wrote which key, from where."""
    await audit_change(
        session,
        ctx=ctx,
        access=access,
        action=f"object.{action}",
        resource=resource,
        details={"key": key, **details},
    )


async def provider_call(operation: Callable[[], Awaitable[T]]) -> T:
    """Runs a storage call, turning the provider's errors into the client's."""
    try:
        return await operation()
    except ProviderError as exc:
        raise provider_problem(exc) from exc


async def add_stored_bytes(session: AsyncSession, bucket_id: uuid.UUID, delta: int) -> None:
    """Moves the bucket's ``storage_bytes`` usage by ``delta`` in one statement, so
    concurrent uploads add up; the reconciler's periodic count corrects any drift."""
    if delta:
        await session.execute(
            text(
                "UPDATE resources SET usage = usage || jsonb_build_object('storage_bytes', "
                "GREATEST(0, COALESCE((usage->>'storage_bytes')::bigint, 0) + :delta)) "
                "WHERE id = :id"
            ),
            {"delta": delta, "id": bucket_id},
        )


async def check_storage_quota(
    session: AsyncSession, *, cloud: CloudRuntime, resource: Resource, size: int
) -> None:
    """403 ``quota_exceeded`` unless ``size`` more bytes fit in the project's quota."""
    await quotas.reserve(
        session,
        settings=cloud.settings,
        project_id=resource.project_id,
        requested={"storage_bytes": size},
    )


async def _size_of(cloud: CloudRuntime, resource: Resource, provider_id: str, key: str) -> int:
    """The current size of ``key`` (0 when absent): what an overwrite or delete frees."""
    storage = storage_of(cloud)
    try:
        info = await storage.head_object(region=resource.region, provider_id=provider_id, key=key)
    except ProviderNotFound:
        return 0
    except ProviderError as exc:
        raise provider_problem(exc) from exc
    return info.size


async def list_objects(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    prefix: str,
    delimiter: str | None,
    cursor: str | None,
    limit: int,
) -> ObjectPage:
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    storage = storage_of(cloud)
    listing = await provider_call(
        lambda: storage.list_objects(
            region=resource.region,
            provider_id=provider_id,
            prefix=prefix,
            delimiter=delimiter,
            token=cursor,
            limit=limit,
        )
    )
    return ObjectPage(
        items=[ObjectOut.of(info) for info in listing.objects],
        prefixes=list(listing.prefixes),
        next_cursor=listing.next_token,
    )


async def head_object(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    key: str,
) -> ObjectOut:
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    storage = storage_of(cloud)
    info = await provider_call(
        lambda: storage.head_object(region=resource.region, provider_id=provider_id, key=key)
    )
    return ObjectOut.of(info)


async def delete_object(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    key: str,
) -> None:
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    storage = storage_of(cloud)
    freed = await _size_of(cloud, resource, provider_id, key)
    await provider_call(
        lambda: storage.delete_object(region=resource.region, provider_id=provider_id, key=key)
    )
    await add_stored_bytes(session, resource.id, -freed)
    await _audit(session, ctx=ctx, access=access, resource=resource, action="delete", key=key)


async def copy_object(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    body: CopyRequest,
) -> ObjectOut:
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    source, source_provider_id = (
        (resource, provider_id)
        if body.source_bucket_id in (None, resource.id)
        else await live_bucket(session, access=access, bucket_id=body.source_bucket_id)
    )
    storage = storage_of(cloud)
    source_info = await provider_call(
        lambda: storage.head_object(
            region=source.region, provider_id=source_provider_id, key=body.source_key
        )
    )
    replaced = await _size_of(cloud, resource, provider_id, body.key)
    await check_storage_quota(session, cloud=cloud, resource=resource, size=source_info.size)
    info = await provider_call(
        lambda: storage.copy_object(
            region=resource.region,
            source_provider_id=source_provider_id,
            source_key=body.source_key,
            provider_id=provider_id,
            key=body.key,
        )
    )
    await add_stored_bytes(session, resource.id, info.size - replaced)
    await _audit(
        session,
        ctx=ctx,
        access=access,
        resource=resource,
        action="copy",
        key=body.key,
        source_bucket_id=str(source.id),
        source_key=body.source_key,
    )
    return ObjectOut.of(info)


async def presign(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    body: PresignRequest,
) -> PresignOut:
    """A presigned GET, or a PUT of a declared size, checked against the quota now."""
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    storage = storage_of(cloud)
    if body.method == "PUT":
        if body.content_length is None:
            raise InvalidInput(
                "content_length", "required for PUT: the upload's exact size in bytes"
            )
        await check_storage_quota(session, cloud=cloud, resource=resource, size=body.content_length)
    elif body.content_length is not None or body.content_type or body.metadata:
        raise InvalidInput("method", "content_length, content_type and metadata are for PUT")
    presigned = await provider_call(
        lambda: storage.presign(
            region=resource.region,
            provider_id=provider_id,
            key=body.key,
            method=body.method,
            expires_in=body.expires_in,
            content_length=body.content_length,
            content_type=body.content_type,
            metadata=body.metadata,
        )
    )
    await _audit(
        session,
        ctx=ctx,
        access=access,
        resource=resource,
        action="presign",
        key=body.key,
        method=body.method,
        expires_in=body.expires_in,
    )
    return PresignOut.of(presigned)


async def create_upload(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    body: UploadCreate,
) -> UploadOut:
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    storage = storage_of(cloud)
    provider_upload_id = await provider_call(
        lambda: storage.create_multipart_upload(
            region=resource.region,
            provider_id=provider_id,
            request=PutRequest(
                key=body.key, content_type=body.content_type, metadata=body.metadata
            ),
        )
    )
    upload = BucketUpload(
        id=uuid.uuid4(),
        project_id=resource.project_id,
        bucket_id=resource.id,
        key=body.key,
        provider_upload_id=provider_upload_id,
    )
    session.add(upload)
    await session.flush()
    await session.refresh(upload, ["created_at"])
    await _audit(
        session,
        ctx=ctx,
        access=access,
        resource=resource,
        action="upload_begin",
        key=body.key,
        upload_id=str(upload.id),
    )
    return UploadOut(
        upload_id=upload.id, bucket_id=resource.id, key=upload.key, created_at=upload.created_at
    )


async def _upload(
    session: AsyncSession, resource: Resource, upload_id: uuid.UUID, *, lock: bool = False
) -> BucketUpload:
    stmt = select(BucketUpload).where(
        BucketUpload.id == upload_id,
        BucketUpload.bucket_id == resource.id,
        BucketUpload.project_id == resource.project_id,
    )
    if lock:
        stmt = stmt.with_for_update()
    upload = await session.scalar(stmt)
    if upload is None:
        raise NotFound(f"Upload {upload_id} not found.", code="upload_not_found")
    return upload


async def presign_part(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    upload_id: uuid.UUID,
    body: PartPresignRequest,
) -> PresignOut:
    """A URL for one part. The quota is checked for the whole upload as declared so far
    (every part's declared size, this one's included), not for this part alone."""
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    upload = await _upload(session, resource, upload_id, lock=True)
    declared = {**upload.declared_parts, str(body.part_number): body.content_length}
    await check_storage_quota(session, cloud=cloud, resource=resource, size=sum(declared.values()))
    upload.declared_parts = declared
    storage = storage_of(cloud)
    presigned = await provider_call(
        lambda: storage.presign(
            region=resource.region,
            provider_id=provider_id,
            key=upload.key,
            method="PUT",
            expires_in=body.expires_in,
            content_length=body.content_length,
            upload_id=upload.provider_upload_id,
            part_number=body.part_number,
        )
    )
    return PresignOut.of(presigned)


async def complete_upload(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    upload_id: uuid.UUID,
    body: UploadComplete,
) -> ObjectOut:
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    upload = await _upload(session, resource, upload_id, lock=True)
    numbers = [part.part_number for part in body.parts]
    if numbers != sorted(set(numbers)):
        raise InvalidInput(
            "parts",
            "list every part once, by ascending part number",
            code="invalid_part_order",
        )
    storage = storage_of(cloud)
    replaced = await _size_of(cloud, resource, provider_id, upload.key)
    info = await provider_call(
        lambda: storage.complete_multipart_upload(
            region=resource.region,
            provider_id=provider_id,
            key=upload.key,
            upload_id=upload.provider_upload_id,
            parts=[UploadedPart(part_number=p.part_number, etag=p.etag) for p in body.parts],
        )
    )
    await session.delete(upload)
    await add_stored_bytes(session, resource.id, info.size - replaced)
    await _audit(
        session,
        ctx=ctx,
        access=access,
        resource=resource,
        action="upload_complete",
        key=upload.key,
        upload_id=str(upload_id),
        size=info.size,
    )
    return ObjectOut.of(info)


async def abort_upload(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    cloud: CloudRuntime,
    access: ProjectAccess,
    bucket_id: uuid.UUID,
    upload_id: uuid.UUID,
) -> None:
    resource, provider_id = await live_bucket(session, access=access, bucket_id=bucket_id)
    upload = await _upload(session, resource, upload_id, lock=True)
    storage = storage_of(cloud)
    await provider_call(
        lambda: storage.abort_multipart_upload(
            region=resource.region,
            provider_id=provider_id,
            key=upload.key,
            upload_id=upload.provider_upload_id,
        )
    )
    await session.execute(delete(BucketUpload).where(BucketUpload.id == upload.id))
    await _audit(
        session,
        ctx=ctx,
        access=access,
        resource=resource,
        action="upload_abort",
        key=upload.key,
        upload_id=str(upload_id),
    )
