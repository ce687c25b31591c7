"""The local provider's object endpoints: GET, HEAD and PUT of objects (and PUT of
multipart parts) at URLs signed by ``LocalStorage.presign``. No bearer token here: the
signature is the credential, and it binds the method, bucket, key, expiry and every
parameter of the upload. On other providers these routes answer 404: clients use the
provider's own presigned URLs."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from lariba.cloud.buckets.errors import provider_problem
from lariba.cloud.buckets.objects import add_stored_bytes, check_storage_quota
from lariba.cloud.buckets.reconcile import KIND
from lariba.cloud.buckets.schemas import OBJECT_KEY_PATTERN
from lariba.cloud.engine.models import Resource, ResourceStatus
from lariba.cloud.engine.runtime import Cloud, CloudRuntime
from lariba.core.errors import Forbidden, LaribaError, NotFound
from lariba.providers.base import ProviderError, ProviderNotFound
from lariba.providers.local.storage import LocalStorage, SignatureRejected, SignedGrant
from lariba.providers.storage import ByteRange, Method, ObjectInfo, PutRequest, key_problem

router = APIRouter(tags=["storage"])

_PATH = "/v1/storage/{bucket_id}/{key:path}"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_PROBLEMS: dict[int | str, dict[str, str]] = {
    400: {
        "description": "A bad key (`invalid_key`), or a body that does not match its "
        "declared length or checksum"
    },
    403: {
        "description": "The signature is wrong (`signature_invalid`) or has expired "
        "(`signature_expired`), or the quota is exceeded (`quota_exceeded`)"
    },
    404: {"description": "No such bucket or object"},
}
BucketId = Annotated[uuid.UUID, Path(description="Bucket id.")]
Key = Annotated[
    str,
    Path(
        description="The object's key (URL-encoded): up to 1024 bytes of UTF-8, no control "
        "characters, no leading `/`, no `.` or `..` segment.",
        # Stated for clients; a key breaking them is answered 400 `invalid_key`.
        json_schema_extra={"pattern": OBJECT_KEY_PATTERN, "maxLength": 1024},
    ),
]


class InvalidKey(LaribaError):
    status = 400
    code = "invalid_key"
    title = "Invalid key"


class RangeNotSatisfiable(LaribaError):
    status = 416
    code = "invalid_range"
    title = "Range not satisfiable"


def _local(cloud: CloudRuntime) -> LocalStorage:
    storage = cloud.provider.storage
    if not isinstance(storage, LocalStorage):
        raise NotFound("This deployment serves no objects itself.", code="not_found")
    return storage


def _grant(
    storage: LocalStorage, request: Request, method: Method, bucket_id: uuid.UUID, key: str
) -> SignedGrant:
    problem = key_problem(key)
    if problem:
        raise InvalidKey(f"key: {problem}")
    try:
        return storage.grant(
            method=method,
            provider_id=f"lariba-{bucket_id.hex}",
            key=key,
            query=dict(request.query_params),
        )
    except SignatureRejected as exc:
        code = "signature_expired" if exc.expired else "signature_invalid"
        raise Forbidden(str(exc), code=code) from None


async def _bucket(session: AsyncSession, request: Request, bucket_id: uuid.UUID) -> Resource:
    """The bucket a signed request acts on; the request is then the bucket's project's."""
    resource = await session.scalar(
        select(Resource).where(
            Resource.id == bucket_id,
            Resource.kind == KIND,
            Resource.status.in_((ResourceStatus.available.value, ResourceStatus.modifying.value)),
        )
    )
    if resource is None or resource.provider_id is None:
        raise NotFound(f"Bucket {bucket_id} not found.", code="bucket_not_found")
    request.state.project_id = resource.project_id
    return resource


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {
        "ETag": f'"{info.etag}"',
        "Last-Modified": info.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "Accept-Ranges": "bytes",
        "Content-Type": info.content_type or "application/octet-stream",
        "Cache-Control": "private, no-store",
    }
    if info.checksum_sha256:
        headers["x-amz-checksum-sha256"] = info.checksum_sha256
    for name, value in info.metadata.items():
        headers[f"x-amz-meta-{name}"] = value
    return headers


def _byte_range(header: str | None, size: int) -> ByteRange | None:
    """One ``bytes=`` range (suffix ranges included); anything else is ignored, as
    RFC 9110 allows, and the whole object is sent."""
    match = _RANGE.match(header or "")
    if match is None or match.group(0) == "bytes=-":
        return None
    first, last = match.groups()
    if not first:  # the last N bytes
        return ByteRange(first=max(0, size - int(last)), last=None) if int(last) else None
    if last and int(last) < int(first):
        return None
    return ByteRange(first=int(first), last=int(last) if last else None)


@router.get(_PATH, summary="Download an object at a signed URL", responses=_PROBLEMS)
async def get_object(
    request: Request, cloud: Cloud, bucket_id: BucketId, key: Key
) -> StreamingResponse:
    storage = _local(cloud)
    grant = _grant(storage, request, "GET", bucket_id, key)
    async with cloud.sessionmaker() as session:
        resource = await _bucket(session, request, bucket_id)
    try:
        info = await storage.head_object(
            region=resource.region, provider_id=grant.provider_id, key=key
        )
        wanted = _byte_range(request.headers.get("range"), info.size)
        if wanted is not None and wanted.first >= info.size:
            raise RangeNotSatisfiable(
                f"The object has {info.size} bytes.",
                headers={"Content-Range": f"bytes */{info.size}"},
            )
        body = await storage.get_object(
            region=resource.region, provider_id=grant.provider_id, key=key, byte_range=wanted
        )
    except ProviderError as exc:
        raise provider_problem(exc) from exc
    headers = _object_headers(body.info)
    status = 200
    if body.range is not None:
        first, last = body.range
        headers["Content-Range"] = f"bytes {first}-{last}/{body.info.size}"
        headers["Content-Length"] = str(last - first + 1)
        status = 206
    else:
        headers["Content-Length"] = str(body.info.size)
    return StreamingResponse(
        body.chunks, status_code=status, headers=headers, media_type=headers["Content-Type"]
    )


@router.head(_PATH, summary="An object's headers at a signed (GET) URL", responses=_PROBLEMS)
async def head_object(request: Request, cloud: Cloud, bucket_id: BucketId, key: Key) -> Response:
    storage = _local(cloud)
    grant = _grant(storage, request, "GET", bucket_id, key)
    async with cloud.sessionmaker() as session:
        resource = await _bucket(session, request, bucket_id)
    try:
        info = await storage.head_object(
            region=resource.region, provider_id=grant.provider_id, key=key
        )
    except ProviderError as exc:
        raise provider_problem(exc) from exc
    headers = {**_object_headers(info), "Content-Length": str(info.size)}
    return Response(status_code=200, headers=headers)


@router.put(
    _PATH,
    summary="Upload an object (or a multipart part) at a signed URL",
    description="The body is streamed to disk and becomes visible only once complete and "
    "checked (its signed length; `Content-MD5` or `x-amz-checksum-sha256` when sent).",
    responses=_PROBLEMS,
)
async def put_object(request: Request, cloud: Cloud, bucket_id: BucketId, key: Key) -> Response:
    storage = _local(cloud)
    grant = _grant(storage, request, "PUT", bucket_id, key)
    if grant.content_length is None:
        raise Forbidden("This URL does not allow uploads.", code="signature_invalid")
    async with cloud.sessionmaker.begin() as session:
        resource = await _bucket(session, request, bucket_id)
        # Refused before a byte is read: the declared length is part of the signature.
        await check_storage_quota(
            session, cloud=cloud, resource=resource, size=grant.content_length
        )
    body = request.stream()
    try:
        if grant.upload_id is not None and grant.part_number is not None:
            part = await storage.upload_part(
                region=resource.region,
                provider_id=grant.provider_id,
                key=key,
                upload_id=grant.upload_id,
                part_number=grant.part_number,
                body=body,
                content_length=grant.content_length,
            )
            return Response(status_code=200, headers={"ETag": f'"{part.etag}"'})
        try:
            replaced = (
                await storage.head_object(
                    region=resource.region, provider_id=grant.provider_id, key=key
                )
            ).size
        except ProviderNotFound:
            replaced = 0
        info = await storage.put_object(
            region=resource.region,
            provider_id=grant.provider_id,
            request=PutRequest(
                key=key,
                content_type=grant.content_type,
                metadata=grant.metadata,
                content_length=grant.content_length,
                content_md5=request.headers.get("content-md5"),
                checksum_sha256=request.headers.get("x-amz-checksum-sha256"),
            ),
            body=body,
        )
    except ClientDisconnect:
        # Nobody is left to answer; the partial upload was discarded.
        return Response(status_code=400)
    except ProviderError as exc:
        raise provider_problem(exc) from exc
    async with cloud.sessionmaker.begin() as session:
        await add_stored_bytes(session, resource.id, info.size - replaced)
    return Response(status_code=200, headers={"ETag": f'"{info.etag}"'})
