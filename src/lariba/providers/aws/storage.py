"""S3 buckets through boto3. New buckets block all public access, encrypt with SSE-S3
and carry Lariba's tags; clients move bytes straight to and from S3 at presigned URLs."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from botocore.config import Config

from lariba.providers.aws.client import (
    CONNECT_TIMEOUT_SECONDS,
    MAX_ATTEMPTS,
    READ_TIMEOUT_SECONDS,
    RegionalClients,
    call,
)
from lariba.providers.base import (
    TAG_PROJECT_ID,
    TAG_RESOURCE_ID,
    PermanentProviderError,
    ProviderError,
    ProviderNotFound,
)
from lariba.providers.storage import (
    MAX_SINGLE_PUT_BYTES,
    BucketSpec,
    BucketStats,
    ByteRange,
    Method,
    ObjectBody,
    ObjectInfo,
    ObjectListing,
    ObservedBucket,
    PresignedRequest,
    PutRequest,
    StorageCheck,
    UploadedPart,
    bucket_name,
)
from lariba.providers.uploads import receive

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

T = TypeVar("T")

READ_CHUNK_BYTES = 1024 * 1024
# Bodies sent through Lariba (not the usual path) are spooled to disk past this size.
SPOOL_BYTES = 8 * 1024 * 1024
_NOT_FOUND = frozenset({"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "404", "NotFound"})
_PREFIX = "lariba-"
TAG_NAME = "lariba:name"


async def _s3(operation: Callable[[], T]) -> T:
    """``call``, with S3's "not found" codes as the contract's ProviderNotFound."""
    try:
        return await call(operation)
    except ProviderError as exc:
        if exc.code in _NOT_FOUND and not isinstance(exc, ProviderNotFound):
            raise ProviderNotFound(exc.message, code=exc.code) from exc
        raise


def _info(key: str, head: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(head.get("ContentLength", head.get("Size", 0))),
        etag=str(head.get("ETag", "")).strip('"'),
        last_modified=head.get("LastModified") or datetime.now(UTC),
        content_type=head.get("ContentType"),
        metadata=dict(head.get("Metadata") or {}),
        checksum_sha256=head.get("ChecksumSHA256"),
    )


class AwsStorage:
    """``StorageProvider`` over S3."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        console_origin: str | None = None,
    ) -> None:
        self._console_origin = console_origin
        self._clients: RegionalClients[S3Client] = RegionalClients(
            "s3",
            session=session,
            endpoint_url=endpoint_url,
            connect_timeout_seconds=connect_timeout_seconds,
            read_timeout_seconds=read_timeout_seconds,
            max_attempts=max_attempts,
            config=Config(
                signature_version="s3v4",
                # An endpoint override (moto, LocalStack, MinIO) serves buckets by path.
                s3={"addressing_style": "path" if endpoint_url else "auto"},
            ),
        )

    # Buckets

    def warm_up(self, regions: Sequence[str]) -> None:
        self._clients.warm(regions)

    async def create_bucket(self, spec: BucketSpec) -> ObservedBucket:
        s3 = self._clients.region(spec.region)
        name = bucket_name(spec.resource_id)
        try:
            await _s3(lambda: s3.head_bucket(Bucket=name))
        except ProviderNotFound:
            try:
                if spec.region == "us-east-1":
                    await _s3(lambda: s3.create_bucket(Bucket=name))
                else:
                    await _s3(
                        lambda: s3.create_bucket(
                            Bucket=name,
                            CreateBucketConfiguration={"LocationConstraint": spec.region},  # type: ignore[typeddict-item]
                        )
                    )
            except PermanentProviderError as exc:
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise
        # Every setting again on every call: a create cut short by a crash is finished
        # by the next one.
        await _s3(
            lambda: s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
        )
        await _s3(
            lambda: s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            )
        )
        await _s3(
            lambda: s3.put_bucket_tagging(
                Bucket=name,
                Tagging={
                    "TagSet": [
                        {"Key": TAG_RESOURCE_ID, "Value": str(spec.resource_id)},
                        {"Key": TAG_PROJECT_ID, "Value": str(spec.project_id)},
                        {"Key": TAG_NAME, "Value": spec.name},
                    ]
                },
            )
        )
        if self._console_origin:
            # The web console's uploads go from the browser straight to presigned URLs:
            # S3 must let that one origin send them (the signature still decides).
            origin = self._console_origin
            await _s3(
                lambda: s3.put_bucket_cors(
                    Bucket=name,
                    CORSConfiguration={
                        "CORSRules": [
                            {
                                "AllowedOrigins": [origin],
                                "AllowedMethods": ["GET", "HEAD", "PUT"],
                                "AllowedHeaders": ["*"],
                                "ExposeHeaders": ["ETag"],
                                "MaxAgeSeconds": 3600,
                            }
                        ]
                    },
                )
            )
        if spec.versioning:
            await self.set_versioning(region=spec.region, provider_id=name, enabled=True)
        return await self.describe_bucket(region=spec.region, provider_id=name)

    async def find_bucket(self, *, region: str, resource_id: uuid.UUID) -> ObservedBucket | None:
        try:
            return await self.describe_bucket(region=region, provider_id=bucket_name(resource_id))
        except ProviderNotFound:
            return None

    async def describe_bucket(self, *, region: str, provider_id: str) -> ObservedBucket:
        s3 = self._clients.region(region)
        await _s3(lambda: s3.head_bucket(Bucket=provider_id))
        versioning = await _s3(lambda: s3.get_bucket_versioning(Bucket=provider_id))
        try:
            tagging = await _s3(lambda: s3.get_bucket_tagging(Bucket=provider_id))
            tags = {tag["Key"]: tag["Value"] for tag in tagging["TagSet"]}
        except PermanentProviderError:  # NoSuchTagSet: not (yet) tagged
            tags = {}
        return ObservedBucket(
            provider_id=provider_id,
            region=region,
            versioning=versioning.get("Status") == "Enabled",
            resource_id=uuid.UUID(tags[TAG_RESOURCE_ID]) if TAG_RESOURCE_ID in tags else None,
            project_id=uuid.UUID(tags[TAG_PROJECT_ID]) if TAG_PROJECT_ID in tags else None,
        )

    async def delete_bucket(self, *, region: str, provider_id: str, force: bool) -> None:
        s3 = self._clients.region(region)
        try:
            if force:
                await asyncio.to_thread(self._empty, s3, provider_id)
            await _s3(lambda: s3.delete_bucket(Bucket=provider_id))
        except ProviderNotFound:
            return

    @staticmethod
    def _empty(s3: S3Client, bucket: str) -> None:
        """Deletes every version, delete marker and unfinished upload (blocking)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from lariba.providers.aws.errors import classify

        try:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                doomed: list[dict[str, str]] = [
                    {"Key": item["Key"], "VersionId": item["VersionId"]}
                    for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                ]
                if doomed:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})  # type: ignore[typeddict-item]
            for uploads in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
                for upload in uploads.get("Uploads", []):
                    s3.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        except (ClientError, BotoCoreError) as exc:
            error = classify(exc)
            if error.code in _NOT_FOUND:
                raise ProviderNotFound(error.message, code=error.code) from exc
            raise error from exc

    async def set_versioning(self, *, region: str, provider_id: str, enabled: bool) -> None:
        s3 = self._clients.region(region)
        status: Literal["Enabled", "Suspended"] = "Enabled" if enabled else "Suspended"
        await _s3(
            lambda: s3.put_bucket_versioning(
                Bucket=provider_id, VersioningConfiguration={"Status": status}
            )
        )

    async def bucket_stats(self, *, region: str, provider_id: str) -> BucketStats:
        s3 = self._clients.region(region)

        def count() -> BucketStats:
            objects = size = 0
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=provider_id):
                for item in page.get("Contents", []):
                    objects += 1
                    size += int(item["Size"])
            return BucketStats(objects=objects, bytes=size)

        return await _s3(count)

    async def list_buckets(self, *, region: str) -> set[str]:
        s3 = self._clients.region(region)
        listed = await _s3(lambda: s3.list_buckets())
        return {b["Name"] for b in listed.get("Buckets", []) if b["Name"].startswith(_PREFIX)}

    # Objects

    async def _spool(
        self, body: AsyncIterator[bytes], request: PutRequest, max_bytes: int
    ) -> tuple[Any, int]:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            received = await receive(body, spool, request=request, max_bytes=max_bytes)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool, received.size

    async def put_object(
        self,
        *,
        region: str,
        provider_id: str,
        request: PutRequest,
        body: AsyncIterator[bytes],
        max_bytes: int | None = None,
    ) -> ObjectInfo:
        s3 = self._clients.region(region)
        limit = MAX_SINGLE_PUT_BYTES if max_bytes is None else max_bytes
        spool, size = await self._spool(body, request, limit)
        extra: dict[str, Any] = {"Metadata": dict(request.metadata)}
        if request.content_type:
            extra["ContentType"] = request.content_type
        with spool:
            await _s3(
                lambda: s3.put_object(
                    Bucket=provider_id, Key=request.key, Body=spool, ContentLength=size, **extra
                )
            )
        return await self.head_object(region=region, provider_id=provider_id, key=request.key)

    async def get_object(
        self, *, region: str, provider_id: str, key: str, byte_range: ByteRange | None = None
    ) -> ObjectBody:
        s3 = self._clients.region(region)
        extra: dict[str, Any] = {}
        if byte_range is not None:
            last = "" if byte_range.last is None else str(byte_range.last)
            extra["Range"] = f"bytes={byte_range.first}-{last}"
        response = await _s3(lambda: s3.get_object(Bucket=provider_id, Key=key, **extra))
        stream = response["Body"]
        span: tuple[int, int] | None = None
        content_range = response.get("ContentRange")
        size = int(response.get("ContentLength", 0))
        if content_range:
            # "bytes 0-9/100"
            first_last, _, total = content_range.removeprefix("bytes ").partition("/")
            first, _, last = first_last.partition("-")
            span = (int(first), int(last))
            size = int(total)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await asyncio.to_thread(stream.read, READ_CHUNK_BYTES)
                    if not chunk:
                        break
                    yield chunk
            finally:
                stream.close()

        info = _info(key, {**response, "ContentLength": size})
        return ObjectBody(info=info, chunks=chunks(), range=span)

    async def head_object(self, *, region: str, provider_id: str, key: str) -> ObjectInfo:
        s3 = self._clients.region(region)
        head = await _s3(
            lambda: s3.head_object(Bucket=provider_id, Key=key, ChecksumMode="ENABLED")
        )
        return _info(key, head)

    async def list_objects(
        self,
        *,
        region: str,
        provider_id: str,
        prefix: str = "",
        delimiter: str | None = None,
        token: str | None = None,
        limit: int = 1000,
    ) -> ObjectListing:
        s3 = self._clients.region(region)
        params: dict[str, Any] = {"Bucket": provider_id, "Prefix": prefix, "MaxKeys": limit}
        if delimiter:
            params["Delimiter"] = delimiter
        if token:
            params["ContinuationToken"] = token
        page = await _s3(lambda: s3.list_objects_v2(**params))
        return ObjectListing(
            objects=[
                ObjectInfo(
                    key=item["Key"],
                    size=int(item["Size"]),
                    etag=str(item.get("ETag", "")).strip('"'),
                    last_modified=item["LastModified"],
                )
                for item in page.get("Contents", [])
            ],
            prefixes=[p["Prefix"] for p in page.get("CommonPrefixes", [])],
            next_token=page.get("NextContinuationToken") if page.get("IsTruncated") else None,
        )

    async def delete_object(self, *, region: str, provider_id: str, key: str) -> None:
        s3 = self._clients.region(region)
        await _s3(lambda: s3.delete_object(Bucket=provider_id, Key=key))

    async def copy_object(
        self,
        *,
        region: str,
        source_provider_id: str,
        source_key: str,
        provider_id: str,
        key: str,
    ) -> ObjectInfo:
        s3 = self._clients.region(region)
        await _s3(
            lambda: s3.copy_object(
                Bucket=provider_id,
                Key=key,
                CopySource={"Bucket": source_provider_id, "Key": source_key},
            )
        )
        return await self.head_object(region=region, provider_id=provider_id, key=key)

    # Multipart uploads

    async def create_multipart_upload(
        self, *, region: str, provider_id: str, request: PutRequest
    ) -> str:
        s3 = self._clients.region(region)
        extra: dict[str, Any] = {"Metadata": dict(request.metadata)}
        if request.content_type:
            extra["ContentType"] = request.content_type
        created = await _s3(
            lambda: s3.create_multipart_upload(Bucket=provider_id, Key=request.key, **extra)
        )
        return created["UploadId"]

    async def upload_part(
        self,
        *,
        region: str,
        provider_id: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterator[bytes],
        content_length: int | None = None,
        max_bytes: int | None = None,
    ) -> UploadedPart:
        s3 = self._clients.region(region)
        limit = MAX_SINGLE_PUT_BYTES if max_bytes is None else max_bytes
        spool, size = await self._spool(
            body, PutRequest(key=key, content_length=content_length), limit
        )
        with spool:
            uploaded = await _s3(
                lambda: s3.upload_part(
                    Bucket=provider_id,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=part_number,
                    Body=spool,
                    ContentLength=size,
                )
            )
        return UploadedPart(part_number=part_number, etag=uploaded["ETag"].strip('"'))

    async def complete_multipart_upload(
        self,
        *,
        region: str,
        provider_id: str,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
    ) -> ObjectInfo:
        s3 = self._clients.region(region)
        await _s3(
            lambda: s3.complete_multipart_upload(
                Bucket=provider_id,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": part.part_number, "ETag": f'"{part.etag.strip(chr(34))}"'}
                        for part in parts
                    ]
                },
            )
        )
        return await self.head_object(region=region, provider_id=provider_id, key=key)

    async def abort_multipart_upload(
        self, *, region: str, provider_id: str, key: str, upload_id: str
    ) -> None:
        s3 = self._clients.region(region)
        try:
            await _s3(
                lambda: s3.abort_multipart_upload(Bucket=provider_id, Key=key, UploadId=upload_id)
            )
        except ProviderNotFound:
            return

    # Presigned URLs

    async def presign(
        self,
        *,
        region: str,
        provider_id: str,
        key: str,
        method: Method,
        expires_in: int,
        content_length: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        upload_id: str | None = None,
        part_number: int | None = None,
    ) -> PresignedRequest:
        s3 = self._clients.region(region)
        params: dict[str, Any] = {"Bucket": provider_id, "Key": key}
        headers: dict[str, str] = {}
        if method == "GET":
            client_method = "get_object"
        elif upload_id is not None:
            client_method = "upload_part"
            params.update(UploadId=upload_id, PartNumber=part_number)
        else:
            client_method = "put_object"
            if content_type:
                params["ContentType"] = content_type
                headers["Content-Type"] = content_type
            if metadata:
                params["Metadata"] = dict(metadata)
                headers.update({f"x-amz-meta-{k}": v for k, v in metadata.items()})
        if method == "PUT" and content_length is not None:
            # Signed: S3 refuses an upload of any other length.
            params["ContentLength"] = content_length
            headers["Content-Length"] = str(content_length)
        url = await _s3(
            lambda: s3.generate_presigned_url(
                client_method, Params=params, ExpiresIn=expires_in, HttpMethod=method
            )
        )
        return PresignedRequest(
            url=url,
            method=method,
            headers=headers,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        )

    async def check(self) -> StorageCheck:
        return StorageCheck()
