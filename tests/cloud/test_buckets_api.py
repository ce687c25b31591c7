"""The buckets API's rules: names, uniqueness, filters, labels, versioning, quotas and
tenant isolation, on the local provider."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.buckets.models import BucketUpload
from lariba.cloud.engine.models import Resource, ResourceEvent
from lariba.core.settings import Settings
from tests.fixtures.buckets import (
    buckets_url,
    create_bucket,
    get_bucket,
    objects_url,
    presign,
    put_object,
)
from tests.fixtures.cloud import cloud_app, cloud_client, cloud_settings, wait_for_operation
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.routes import operations


async def _project(client: httpx.AsyncClient) -> tuple[TestUser, str]:
    user = await sign_up(client)
    return user, (await create_project(client, user))["id"]


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return cloud_settings(tmp_path, local_storage_min_part_bytes=1024, **overrides)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ab"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"name": "Upper-Case"}, "name"),
        ({"name": "under_score"}, "name"),
        ({"name": "-leading"}, "name"),
        ({"name": "trailing."}, "name"),
        ({"name": "two..dots"}, "name"),
        ({"name": "dot.-hyphen"}, "name"),
        ({"name": "192.168.1.10"}, "name"),
        ({"name": "xn--punycode"}, "name"),
        ({"name": "fine-name", "region": "mars-1"}, "region"),
        ({"name": "fine-name", "labels": {"Bad Key": "x"}}, "labels"),
        ({"name": "fine-name", "owner": "someone"}, "owner"),
    ],
)
async def test_bad_bucket_input_is_422_naming_the_field(
    tmp_path: Path, test_database_url: str, db: AsyncSession, body: dict[str, Any], field: str
) -> None:
    async with cloud_client(_settings(tmp_path), test_database_url, run_worker=False) as client:
        user, pid = await _project(client)
        response = await client.post(buckets_url(pid), json=body, headers=user.headers)
    assert response.status_code == 422, response.text
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), response.json()
    assert await db.scalar(select(func.count()).select_from(Resource)) == 0
    assert not (tmp_path / "buckets").exists() or not any((tmp_path / "buckets").iterdir())


async def test_name_is_unique_per_project_and_count_quota_holds(
    tmp_path: Path, test_database_url: str
) -> None:
    async with cloud_client(
        _settings(tmp_path, quota_buckets=2), test_database_url, run_worker=False
    ) as client:
        user, pid = await _project(client)
        other = (await create_project(client, user, name="other"))["id"]
        url = buckets_url(pid)
        assert (
            await client.post(url, json={"name": "logs"}, headers=user.headers)
        ).status_code == 202
        taken = await client.post(url, json={"name": "logs"}, headers=user.headers)
        assert taken.status_code == 409
        assert taken.json()["code"] == "name_taken"
        elsewhere = await client.post(
            buckets_url(other), json={"name": "logs"}, headers=user.headers
        )
        assert elsewhere.status_code == 202
        assert (
            await client.post(url, json={"name": "data"}, headers=user.headers)
        ).status_code == 202
        refused = await client.post(url, json={"name": "more"}, headers=user.headers)
        assert refused.status_code == 403
        assert (refused.json()["code"], refused.json()["quota"]) == ("quota_exceeded", "buckets")


async def test_list_filters_labels_and_versioning_are_operations(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_client(_settings(tmp_path), test_database_url) as client:
        user, pid = await _project(client)
        ids = [
            await create_bucket(
                client, user, pid, name=f"bucket-{i}", labels={"env": "prod" if i % 2 else "dev"}
            )
            for i in range(3)
        ]
        url = buckets_url(pid)
        prod = await client.get(url, params={"label": "env=prod"}, headers=user.headers)
        assert [b["name"] for b in prod.json()["items"]] == ["bucket-1"]
        first = await client.get(url, params={"limit": 2}, headers=user.headers)
        rest = await client.get(
            url, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=user.headers
        )
        assert [b["name"] for b in first.json()["items"] + rest.json()["items"]] == [
            "bucket-0",
            "bucket-1",
            "bucket-2",
        ]
        available = await client.get(url, params={"status": "available"}, headers=user.headers)
        assert len(available.json()["items"]) == 3

        labelled = await client.patch(
            f"{url}/{ids[0]}", json={"labels": {"tier": "gold"}}, headers=user.headers
        )
        assert labelled.status_code == 202, labelled.text
        assert (labelled.json()["type"], labelled.json()["status"]) == ("update", "succeeded")

        versioned = await client.put(
            f"{url}/{ids[0]}/versioning", json={"enabled": True}, headers=user.headers
        )
        assert versioned.status_code == 202, versioned.text
        assert (await get_bucket(client, user, pid, ids[0]))["status"] in ("modifying", "available")
        done = await wait_for_operation(client, user, versioned.json())
        assert (done["type"], done["status"], done["params"]) == (
            "update",
            "succeeded",
            {"versioning": True},
        )
        bucket = await get_bucket(client, user, pid, ids[0])
        assert (bucket["status"], bucket["versioning"], bucket["labels"]) == (
            "available",
            True,
            {"tier": "gold"},
        )
        same = await client.put(
            f"{url}/{ids[0]}/versioning", json={"enabled": True}, headers=user.headers
        )
        assert same.status_code == 409
        assert same.json()["code"] == "versioning_unchanged"
    record = (tmp_path / "buckets" / f"lariba-{uuid.UUID(ids[0]).hex}" / "bucket.json").read_text()
    assert '"versioning": true' in record


async def test_storage_quota_refuses_before_any_byte_is_stored(
    tmp_path: Path, test_database_url: str
) -> None:
    async with cloud_client(
        _settings(tmp_path, quota_storage_bytes=1000), test_database_url
    ) as client:
        user, pid = await _project(client)
        bid = await create_bucket(client, user, pid, name="small")
        sent = await put_object(client, client, user, pid, bid, "a.bin", b"x" * 600)
        assert sent.status_code == 200
        # 600 used: a presigned PUT of 500 more is refused when asked for ...
        refused = await presign(
            client, user, pid, bid, key="b.bin", method="PUT", content_length=500
        )
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert (body["code"], body["quota"], body["in_use"], body["requested"]) == (
            "quota_exceeded",
            "storage_bytes",
            600,
            500,
        )
        # ... and a URL issued while there was room is refused at upload time.
        early = await presign(client, user, pid, bid, key="c.bin", method="PUT", content_length=300)
        assert early.status_code == 200
        filler = await put_object(client, client, user, pid, bid, "d.bin", b"y" * 300)
        assert filler.status_code == 200
        late = await client.put(
            early.json()["url"], content=b"z" * 300, headers=early.json()["headers"]
        )
        assert late.status_code == 403, late.text
        assert late.json()["code"] == "quota_exceeded"
        # A multipart part too.
        base = objects_url(pid, bid)
        upload = await client.post(f"{base}/uploads", json={"key": "e.bin"}, headers=user.headers)
        part = await client.post(
            f"{base}/uploads/{upload.json()['upload_id']}/parts",
            json={"part_number": 1, "content_length": 200},
            headers=user.headers,
        )
        assert part.status_code == 403
        quotas = await client.get(f"/v1/projects/{pid}/quotas", headers=user.headers)
        storage = next(q for q in quotas.json()["items"] if q["name"] == "storage_bytes")
        assert (storage["limit"], storage["in_use"]) == (1000, 900)
        bucket = await get_bucket(client, user, pid, bid)
        assert (bucket["objects"], bucket["bytes"]) == (2, 900)
    shards = tmp_path / "buckets" / f"lariba-{uuid.UUID(bid).hex}" / "objects"
    assert (
        sorted(p.suffix for p in shards.rglob("*") if p.is_file()) == [".data"] * 2 + [".json"] * 2
    )


_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "buckets"): {"name": "stolen"},
    ("PATCH", "{bucket_id}"): {"labels": {"stolen": "yes"}},
    ("PUT", "versioning"): {"enabled": True},
    ("POST", "presign"): {"key": "secret.txt", "method": "GET"},
    ("POST", "copy"): {"source_key": "secret.txt", "key": "mine.txt"},
    ("POST", "uploads"): {"key": "x"},
    ("POST", "parts"): {"part_number": 1, "content_length": 10},
    ("POST", "complete"): {"parts": [{"part_number": 1, "etag": "x"}]},
}


async def test_every_bucket_and_object_route_is_404_to_another_tenant(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_app(_settings(tmp_path), test_database_url) as (app, client):
        alice, alice_pid = await _project(client)
        bob, bob_pid = await _project(client)
        bid = await create_bucket(client, alice, alice_pid, name="secret")
        assert (
            await put_object(client, client, alice, alice_pid, bid, "secret.txt", b"s")
        ).status_code == 200
        upload = await client.post(
            f"{objects_url(alice_pid, bid)}/uploads", json={"key": "big"}, headers=alice.headers
        )
        upload_id = upload.json()["upload_id"]
        before = (await db.execute(select(Resource.__table__))).all()
        events_before = await db.scalar(select(func.count()).select_from(ResourceEvent))
        routes = [
            op for op in operations(app) if "{bucket_id}" in op.path and "{project_id}" in op.path
        ]
        assert len(routes) >= 14
        for op in routes:
            for project_id in (alice_pid, bob_pid):
                url = op.url(project_id=project_id, bucket_id=bid, upload_id=upload_id)
                body = _BODIES.get((op.method, op.path.rsplit("/", 1)[-1]))
                response = await client.request(
                    op.method,
                    url,
                    json=body,
                    params={"key": "secret.txt"},
                    headers=bob.headers,
                )
                assert response.status_code == 404, (op.method, url, response.text)
        assert (await db.execute(select(Resource.__table__))).all() == before
        assert await db.scalar(select(func.count()).select_from(ResourceEvent)) == events_before
        assert await db.scalar(select(func.count()).select_from(BucketUpload)) == 1
        # Alice still has her object.
        head = await client.get(
            f"{objects_url(alice_pid, bid)}/metadata",
            params={"key": "secret.txt"},
            headers=alice.headers,
        )
        assert head.status_code == 200
        # A bucket of Bob's cannot name Alice's as a copy source either.
        bobs = await create_bucket(client, bob, bob_pid, name="bobs")
        stolen = await client.post(
            f"{objects_url(bob_pid, bobs)}/copy",
            json={"source_key": "secret.txt", "key": "mine.txt", "source_bucket_id": bid},
            headers=bob.headers,
        )
        assert stolen.status_code == 404
        assert stolen.json()["code"] == "bucket_not_found"
        # Nor reach Alice's upload through his own bucket.
        part = await client.post(
            f"{objects_url(bob_pid, bobs)}/uploads/{upload_id}/parts",
            json={"part_number": 1, "content_length": 10},
            headers=bob.headers,
        )
        assert (part.status_code, part.json()["code"]) == (404, "upload_not_found")


async def test_multipart_quota_counts_every_declared_part(
    tmp_path: Path, test_database_url: str
) -> None:
    async with cloud_client(
        _settings(tmp_path, quota_storage_bytes=1000), test_database_url
    ) as client:
        user, pid = await _project(client)
        bid = await create_bucket(client, user, pid, name="parts")
        base = objects_url(pid, bid)
        upload = await client.post(f"{base}/uploads", json={"key": "big"}, headers=user.headers)
        parts = f"{base}/uploads/{upload.json()['upload_id']}/parts"

        async def part(number: int, size: int) -> int:
            response = await client.post(
                parts, json={"part_number": number, "content_length": size}, headers=user.headers
            )
            return response.status_code

        assert await part(1, 600) == 200
        # Each part fits on its own; together they would not.
        assert await part(2, 600) == 403
        # Asking again for part 1 replaces its declared size instead of adding to it.
        assert await part(1, 600) == 200
        assert await part(2, 400) == 200


async def test_quotas_count_storage_beyond_two_gib(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    """storage_bytes passes 2**31 at 2 GiB: the quota sums are bigint, not integer."""
    async with cloud_client(_settings(tmp_path), test_database_url) as client:
        user, pid = await _project(client)
        bid = await create_bucket(client, user, pid, name="large")
        await db.execute(
            update(Resource)
            .where(Resource.id == uuid.UUID(bid))
            .values(usage={"buckets": 1, "storage_bytes": 3 * 1024**3})
        )
        await db.commit()
        quotas = await client.get(f"/v1/projects/{pid}/quotas", headers=user.headers)
        assert quotas.status_code == 200, quotas.text
        storage = next(q for q in quotas.json()["items"] if q["name"] == "storage_bytes")
        assert storage["in_use"] == 3 * 1024**3
        fits = await presign(client, user, pid, bid, key="k", method="PUT", content_length=1024**3)
        assert fits.status_code == 200, fits.text
