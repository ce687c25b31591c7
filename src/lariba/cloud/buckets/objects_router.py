"""HTTP endpoints of a bucket's objects. Bytes go to and from presigned URLs, never
through these routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from lariba.cloud.buckets import objects
from lariba.cloud.buckets.router import BucketId
from lariba.cloud.buckets.schemas import (
    OBJECT_KEY_PATTERN,
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
from lariba.cloud.engine.router import PROBLEMS
from lariba.cloud.engine.runtime import Cloud
from lariba.core.db import DbSession
from lariba.core.errors import LaribaError
from lariba.identity.audit import Context
from lariba.identity.authz import ProjectMember, ProjectViewer
from lariba.providers.storage import key_problem

router = APIRouter(tags=["objects"])

OBJECT_PROBLEMS: dict[int | str, dict[str, str]] = {
    **PROBLEMS,
    403: {"description": "Role too low (`insufficient_role`) or quota exceeded (`quota_exceeded`)"},
    409: {"description": "The bucket is not available (`invalid_state`)"},
    503: {"description": "The provider did not answer (`provider_unavailable`)"},
}

_OBJECTS = "/v1/projects/{project_id}/buckets/{bucket_id}/objects"


class InvalidKey(LaribaError):
    status = 422
    code = "validation_failed"
    title = "Invalid input"

    def __init__(self, message: str) -> None:
        super().__init__(
            f"key: {message}",
            extra={"errors": [{"field": "key", "message": message, "location": "query"}]},
        )


def _key(value: str) -> str:
    problem = key_problem(value)
    if problem:
        raise InvalidKey(problem)
    return value


UploadId = Annotated[uuid.UUID, Path(description="Upload id (from beginning the upload).")]
KeyQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=1024,
        description="The object's key.",
        json_schema_extra={"pattern": OBJECT_KEY_PATTERN},
    ),
]


@router.get(
    _OBJECTS,
    response_model=ObjectPage,
    summary="List objects in key order",
    description="`delimiter` (usually `/`) rolls keys up into `prefixes`, like folders.",
    responses=OBJECT_PROBLEMS,
)
async def list_objects(
    access: ProjectViewer,
    session: DbSession,
    cloud: Cloud,
    bucket_id: BucketId,
    prefix: Annotated[str, Query(max_length=1024, description="Only keys starting so.")] = "",
    delimiter: Annotated[str | None, Query(min_length=1, max_length=16)] = None,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=objects.MAX_LIST_LIMIT)] = objects.MAX_LIST_LIMIT,
) -> ObjectPage:
    return await objects.list_objects(
        session,
        cloud=cloud,
        access=access,
        bucket_id=bucket_id,
        prefix=prefix,
        delimiter=delimiter,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    f"{_OBJECTS}/metadata",
    response_model=ObjectOut,
    summary="An object's size, type, ETag, checksum and user metadata",
    responses=OBJECT_PROBLEMS,
)
async def head_object(
    access: ProjectViewer, session: DbSession, cloud: Cloud, bucket_id: BucketId, key: KeyQuery
) -> ObjectOut:
    return await objects.head_object(
        session, cloud=cloud, access=access, bucket_id=bucket_id, key=_key(key)
    )


@router.delete(
    _OBJECTS,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an object (deleting a missing key succeeds)",
    responses=OBJECT_PROBLEMS,
)
async def delete_object(
    access: ProjectMember,
    session: DbSession,
    ctx: Context,
    cloud: Cloud,
    bucket_id: BucketId,
    key: KeyQuery,
) -> Response:
    await objects.delete_object(
        session, ctx=ctx, cloud=cloud, access=access, bucket_id=bucket_id, key=_key(key)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    f"{_OBJECTS}/copy",
    response_model=ObjectOut,
    summary="Copy an object (from this bucket or another of the project)",
    responses=OBJECT_PROBLEMS,
)
async def copy_object(
    body: CopyRequest,
    access: ProjectMember,
    session: DbSession,
    ctx: Context,
    cloud: Cloud,
    bucket_id: BucketId,
) -> ObjectOut:
    return await objects.copy_object(
        session, ctx=ctx, cloud=cloud, access=access, bucket_id=bucket_id, body=body
    )


@router.post(
    f"{_OBJECTS}/presign",
    response_model=PresignOut,
    summary="A presigned URL to download (GET) or upload (PUT) one object",
    description="A PUT must declare `content_length`: it is checked against the "
    "`storage_bytes` quota now and bound to the signature. Send the returned `headers`.",
    responses=OBJECT_PROBLEMS,
)
async def presign(
    body: PresignRequest,
    access: ProjectMember,
    session: DbSession,
    ctx: Context,
    cloud: Cloud,
    bucket_id: BucketId,
) -> PresignOut:
    return await objects.presign(
        session, ctx=ctx, cloud=cloud, access=access, bucket_id=bucket_id, body=body
    )


@router.post(
    f"{_OBJECTS}/uploads",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    summary="Begin a multipart upload",
    responses=OBJECT_PROBLEMS,
)
async def create_upload(
    body: UploadCreate,
    access: ProjectMember,
    session: DbSession,
    ctx: Context,
    cloud: Cloud,
    bucket_id: BucketId,
) -> UploadOut:
    return await objects.create_upload(
        session, ctx=ctx, cloud=cloud, access=access, bucket_id=bucket_id, body=body
    )


@router.post(
    f"{_OBJECTS}/uploads/{{upload_id}}/parts",
    response_model=PresignOut,
    summary="A presigned URL to upload one part of a multipart upload",
    description="Parts but the last must be at least 5 MiB. The part's ETag comes back "
    "in the upload's `ETag` response header: keep it for completing.",
    responses=OBJECT_PROBLEMS,
)
async def presign_part(
    body: PartPresignRequest,
    access: ProjectMember,
    session: DbSession,
    cloud: Cloud,
    bucket_id: BucketId,
    upload_id: UploadId,
) -> PresignOut:
    return await objects.presign_part(
        session, cloud=cloud, access=access, bucket_id=bucket_id, upload_id=upload_id, body=body
    )


@router.post(
    f"{_OBJECTS}/uploads/{{upload_id}}/complete",
    response_model=ObjectOut,
    summary="Complete a multipart upload from its parts, by ascending part number",
    responses=OBJECT_PROBLEMS,
)
async def complete_upload(
    body: UploadComplete,
    access: ProjectMember,
    session: DbSession,
    ctx: Context,
    cloud: Cloud,
    bucket_id: BucketId,
    upload_id: UploadId,
) -> ObjectOut:
    return await objects.complete_upload(
        session,
        ctx=ctx,
        cloud=cloud,
        access=access,
        bucket_id=bucket_id,
        upload_id=upload_id,
        body=body,
    )


@router.delete(
    f"{_OBJECTS}/uploads/{{upload_id}}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Abort a multipart upload, discarding its parts",
    responses=OBJECT_PROBLEMS,
)
async def abort_upload(
    access: ProjectMember,
    session: DbSession,
    ctx: Context,
    cloud: Cloud,
    bucket_id: BucketId,
    upload_id: UploadId,
) -> Response:
    await objects.abort_upload(
        session, ctx=ctx, cloud=cloud, access=access, bucket_id=bucket_id, upload_id=upload_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
