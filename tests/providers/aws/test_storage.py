"""``AwsStorage`` against moto: the storage contract on S3, including the calls the API does
not route bytes through (streaming put and get), checked from outside with boto3."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from mypy_boto3_s3.client import S3Client

from lariba.providers.aws import AwsStorage
from lariba.providers.base import PermanentProviderError, ProviderNotFound, TransientProviderError
from lariba.providers.storage import BucketSpec, ByteRange, PutRequest, bucket_name
from tests.fixtures.moto import REGION, dummy_session, free_port


@pytest.fixture
def storage(moto_endpoint: str) -> AwsStorage:
    return AwsStorage(endpoint_url=moto_endpoint, session=dummy_session())


@pytest.fixture
def s3(moto_endpoint: str) -> S3Client:
    return dummy_session().client("s3", endpoint_url=moto_endpoint)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_bucket_lifecycle_and_streamed_objects(storage: AwsStorage, s3: S3Client) -> None:
    spec = BucketSpec(resource_id=uuid.uuid4(), project_id=uuid.uuid4(), name="b", region=REGION)
    assert await storage.find_bucket(region=REGION, resource_id=spec.resource_id) is None
    observed = await storage.create_bucket(spec)
    # A create retried after a crash finds the same bucket and finishes its settings.
    assert await storage.create_bucket(spec) == observed
    name = bucket_name(spec.resource_id)
    assert observed.provider_id == name
    assert (observed.resource_id, observed.project_id) == (spec.resource_id, spec.project_id)
    assert await storage.list_buckets(region=REGION) == {name}

    data = b"0123456789" * 1000
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    info = await storage.put_object(
        region=REGION,
        provider_id=name,
        request=PutRequest(
            key="dir/a.bin",
            content_type="application/x-test",
            metadata={"origin": "test"},
            content_length=len(data),
            checksum_sha256=sha,
        ),
        body=chunks(data[:3000], data[3000:]),
    )
    assert (info.size, info.etag) == (len(data), hashlib.md5(data).hexdigest())  # noqa: S324
    head = s3.head_object(Bucket=name, Key="dir/a.bin")
    assert (head["ContentType"], head["Metadata"]) == ("application/x-test", {"origin": "test"})
    body = await storage.get_object(
        region=REGION, provider_id=name, key="dir/a.bin", byte_range=ByteRange(10, 14)
    )
    assert (body.range, body.info.size) == ((10, 14), len(data))
    assert b"".join([c async for c in body.chunks]) == b"01234"

    with pytest.raises(PermanentProviderError) as mismatch:
        await storage.put_object(
            region=REGION,
            provider_id=name,
            request=PutRequest(key="bad.bin", checksum_sha256=sha),
            body=chunks(b"not the same"),
        )
    assert mismatch.value.code == "BadDigest"
    with pytest.raises(ProviderNotFound):
        await storage.head_object(region=REGION, provider_id=name, key="bad.bin")

    copied = await storage.copy_object(
        region=REGION,
        source_provider_id=name,
        source_key="dir/a.bin",
        provider_id=name,
        key="dir/b.bin",
    )
    assert copied.size == len(data)
    stats = await storage.bucket_stats(region=REGION, provider_id=name)
    assert (stats.objects, stats.bytes) == (2, 2 * len(data))

    await storage.delete_object(region=REGION, provider_id=name, key="dir/b.bin")
    await storage.delete_object(region=REGION, provider_id=name, key="dir/b.bin")
    with pytest.raises(ProviderNotFound):
        await storage.get_object(region=REGION, provider_id=name, key="dir/b.bin")

    await storage.set_versioning(region=REGION, provider_id=name, enabled=True)
    for _ in range(2):
        await storage.put_object(
            region=REGION, provider_id=name, request=PutRequest(key="v"), body=chunks(b"v")
        )
    with pytest.raises(PermanentProviderError) as not_empty:
        await storage.delete_bucket(region=REGION, provider_id=name, force=False)
    assert not_empty.value.code == "BucketNotEmpty"
    upload = await storage.create_multipart_upload(
        region=REGION, provider_id=name, request=PutRequest(key="unfinished")
    )
    assert upload
    await storage.delete_bucket(region=REGION, provider_id=name, force=True)
    await storage.delete_bucket(region=REGION, provider_id=name, force=True)
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    with pytest.raises(ProviderNotFound):
        await storage.describe_bucket(region=REGION, provider_id=name)


async def test_unreachable_endpoint_is_transient() -> None:
    storage = AwsStorage(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        session=dummy_session(),
        connect_timeout_seconds=0.5,
        max_attempts=1,
    )
    with pytest.raises(TransientProviderError):
        await storage.bucket_stats(region=REGION, provider_id="lariba-" + "0" * 32)
