"""How the reconciler treats buckets: a worker killed right after the provider made the
bucket, provider failures, buckets deleted behind Lariba's back, and byte counts that
change at the provider."""

from __future__ import annotations

import asyncio
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource
from lariba.cloud.engine.reconciler import resync
from lariba.cloud.tasks import KINDS
from lariba.providers.base import (
    PermanentProviderError,
    Provider,
    TransientProviderError,
)
from lariba.providers.catalog import load_catalog
from lariba.providers.local import LocalCompute
from lariba.providers.local.storage import LocalStorage
from lariba.providers.storage import BucketSpec, ObservedBucket, PutRequest
from tests.fixtures.buckets import buckets_url, create_bucket, get_bucket
from tests.fixtures.cloud import cloud_app, cloud_client, cloud_settings, wait_for_operation
from tests.fixtures.identity import create_project, sign_up
from tests.fixtures.workers import lariba_workers


class FlakyStorage(LocalStorage):
    """Local storage whose first ``create_bucket`` calls fail as told."""

    def __init__(self, root: Path, failures: list[Exception]) -> None:
        super().__init__(root=root, signing_key=b"k" * 32, base_url="http://lariba.test")
        self.failures = failures
        self.creates = 0

    async def create_bucket(self, spec: BucketSpec) -> ObservedBucket:
        self.creates += 1
        if self.failures:
            raise self.failures.pop(0)
        return await super().create_bucket(spec)


def provider(tmp_path: Path, storage: LocalStorage) -> Provider:
    compute = LocalCompute(
        catalog=load_catalog("local"), root=tmp_path / "instances", enabled=False
    )
    return Provider(name="local", compute=compute, storage=storage)


def bucket_dirs(tmp_path: Path) -> list[str]:
    root = tmp_path / "buckets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def test_worker_killed_after_the_bucket_was_made_converges_on_that_bucket(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    settings = cloud_settings(tmp_path)
    async with cloud_client(settings, test_database_url, run_worker=False) as client:
        with lariba_workers(settings, test_database_url) as workers:
            user = await sign_up(client)
            pid = (await create_project(client, user))["id"]
            [doomed] = await workers.start(failpoints="bucket-created")
            created = await client.post(
                buckets_url(pid), json={"name": "survivor"}, headers=user.headers
            )
            bid = created.json()["resource"]["id"]
            assert await doomed.exited(within=30) == -signal.SIGKILL, doomed.output()
            resource = await db.get(Resource, uuid.UUID(bid))
            assert resource is not None
            assert (resource.provider_id, resource.create_attempts) == (None, 1)
            assert bucket_dirs(tmp_path) == [f"lariba-{uuid.UUID(bid).hex}"]

            await workers.start()
            done = await wait_for_operation(client, user, created.json(), within=30)
            assert done["status"] == "succeeded", (done, workers.logs())
            bucket = await get_bucket(client, user, pid, bid)
            assert bucket["status"] == "available"
            assert bucket["provider_id"] == f"lariba-{uuid.UUID(bid).hex}"
            # The retried create found the bucket by its name: still one.
            assert bucket_dirs(tmp_path) == [bucket["provider_id"]]


async def test_throttled_create_retries_and_a_refusal_ends_in_error(
    tmp_path: Path, test_database_url: str
) -> None:
    storage = FlakyStorage(
        tmp_path / "buckets",
        [
            TransientProviderError("slow down", code="SlowDown"),
            TransientProviderError("slow down", code="SlowDown"),
        ],
    )
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, provider=provider(tmp_path, storage)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name="patient")
        assert storage.creates == 3
        assert (await get_bucket(client, user, pid, bid))["status"] == "available"

        storage.failures = [PermanentProviderError("no more buckets", code="TooManyBuckets")]
        refused = await client.post(
            buckets_url(pid), json={"name": "one-too-many"}, headers=user.headers
        )
        done = await wait_for_operation(client, user, refused.json())
        assert done["status"] == "failed"
        assert done["error"] == {"code": "TooManyBuckets", "message": "no more buckets"}
        bucket = await get_bucket(client, user, pid, refused.json()["resource"]["id"])
        assert bucket["status"] == "error"
        assert bucket["status_reason"] == "no more buckets (TooManyBuckets)"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_resync_counts_bytes_and_notices_a_bucket_deleted_behind_lariba(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_app(cloud_settings(tmp_path), test_database_url) as (app, client):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        kept = await create_bucket(client, user, pid, name="kept")
        lost = await create_bucket(client, user, pid, name="lost")
        cloud = app.state.cloud
        storage = cloud.provider.storage
        # Bytes that reached the provider without Lariba's API (as uploads straight to S3).
        await storage.put_object(
            region="local",
            provider_id=f"lariba-{uuid.UUID(kept).hex}",
            request=PutRequest(key="direct.bin"),
            body=_chunks(b"d" * 1234),
        )
        shutil.rmtree(tmp_path / "buckets" / f"lariba-{uuid.UUID(lost).hex}")
        assert await resync(cloud, KINDS, app.state.jobs.app) == 2
        for _ in range(100):
            listed = (await client.get(buckets_url(pid), headers=user.headers)).json()["items"]
            seen = {b["name"]: (b["status"], b["bytes"]) for b in listed}
            if seen == {"kept": ("available", 1234), "lost": ("error", 0)}:
                break
            await asyncio.sleep(0.1)
        assert seen == {"kept": ("available", 1234), "lost": ("error", 0)}
        gone = await get_bucket(client, user, pid, lost)
        assert gone["status_reason"] == "deleted outside Lariba (BucketGone)"
        quotas = await client.get(f"/v1/projects/{pid}/quotas", headers=user.headers)
        storage_use = next(q for q in quotas.json()["items"] if q["name"] == "storage_bytes")
        assert storage_use["in_use"] == 1234
        events = await client.get(f"{buckets_url(pid)}/{lost}/events", headers=user.headers)
        assert events.json()["items"][0]["type"] == "drift"
