"""Buckets and objects end to end through HTTP on the aws provider, against a moto
server: bytes go straight to S3 at presigned URLs, never through Lariba."""

from __future__ import annotations

from pathlib import Path

import httpx

from lariba.providers.aws import AwsCompute, AwsStorage
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
from tests.fixtures.buckets import create_bucket, end_to_end, presign
from tests.fixtures.cloud import cloud_client, cloud_settings
from tests.fixtures.identity import create_project, sign_up
from tests.fixtures.moto import dummy_session

# S3's minimum part size (all parts but the last).
PART_BYTES = 5 * 1024 * 1024


def aws_provider(endpoint: str) -> Provider:
    return Provider(
        name="aws",
        compute=AwsCompute(
            catalog=load_catalog("aws"), endpoint_url=endpoint, session=dummy_session()
        ),
        storage=AwsStorage(
            endpoint_url=endpoint,
            session=dummy_session(),
            console_origin="https://cloud.example.com",
        ),
    )


async def test_bucket_and_objects_end_to_end(
    tmp_path: Path, test_database_url: str, moto_endpoint: str
) -> None:
    settings = cloud_settings(tmp_path, provider="aws", aws_endpoint_url=moto_endpoint)
    s3 = dummy_session().client("s3", endpoint_url=moto_endpoint)
    async with (
        cloud_client(settings, test_database_url, provider=aws_provider(moto_endpoint)) as client,
        httpx.AsyncClient(timeout=30) as transfer,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await end_to_end(client, transfer, user, pid, part_bytes=PART_BYTES)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert f"lariba-{bid.replace('-', '')}" not in names


async def test_new_bucket_is_private_encrypted_and_tagged(
    tmp_path: Path, test_database_url: str, moto_endpoint: str
) -> None:
    settings = cloud_settings(tmp_path, provider="aws", aws_endpoint_url=moto_endpoint)
    s3 = dummy_session().client("s3", endpoint_url=moto_endpoint)
    async with cloud_client(
        settings, test_database_url, provider=aws_provider(moto_endpoint)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name="private-data", versioning=True)
        name = f"lariba-{bid.replace('-', '')}"
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
        rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][
            0
        ]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
        assert tags == {
            "lariba:resource-id": bid,
            "lariba:project-id": pid,
            "lariba:name": "private-data",
        }
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
        # Only the web console's origin may send the browser uploads to presigned URLs.
        (cors,) = s3.get_bucket_cors(Bucket=name)["CORSRules"]
        assert cors["AllowedOrigins"] == ["https://cloud.example.com"]
        assert sorted(cors["AllowedMethods"]) == ["GET", "HEAD", "PUT"]
        assert cors["ExposeHeaders"] == ["ETag"]
        # The URL points at S3 itself, not at Lariba.
        signed = await presign(client, user, pid, bid, key="a.txt", method="GET")
        assert signed.json()["url"].startswith(f"{moto_endpoint}/{name}/a.txt?")
