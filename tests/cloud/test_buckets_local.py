"""Buckets and objects end to end through HTTP on the local provider: bytes at Lariba's
own signed URLs, files on disk; what those URLs refuse, and what an upload cut off
mid-body leaves (nothing)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import uvicorn
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.buckets.models import BucketUpload
from lariba.cloud.buckets.reconcile import expire_abandoned_uploads
from lariba.core.settings import Settings
from tests.fixtures.buckets import (
    create_bucket,
    end_to_end,
    md5_b64,
    objects_url,
    presign,
)
from tests.fixtures.cloud import cloud_app, cloud_client, cloud_settings
from tests.fixtures.identity import create_project, sign_up
from tests.fixtures.moto import free_port

PART_BYTES = 64 * 1024


def local_settings(tmp_path: Path, **overrides: Any) -> Settings:
    # Small parts keep the tests fast; deployments keep S3's 5 MiB minimum.
    return cloud_settings(tmp_path, local_storage_min_part_bytes=PART_BYTES, **overrides)


def stored_files(tmp_path: Path, bucket_id: str) -> list[str]:
    root = tmp_path / "buckets" / f"lariba-{uuid.UUID(bucket_id).hex}"
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in ("bucket.json", ".lock")
    )


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query)), **changes}
    return parts._replace(query=urlencode(query)).geturl()


async def test_bucket_and_objects_end_to_end(tmp_path: Path, test_database_url: str) -> None:
    async with cloud_client(local_settings(tmp_path), test_database_url) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await end_to_end(client, client, user, pid, part_bytes=PART_BYTES)
    assert not (tmp_path / "buckets" / f"lariba-{uuid.UUID(bid).hex}").exists()


async def test_signed_urls_refuse_tampering_expiry_and_bad_keys(
    tmp_path: Path, test_database_url: str
) -> None:
    async with cloud_client(local_settings(tmp_path), test_database_url) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name="guarded")
        other = await create_bucket(client, user, pid, name="other")
        signed = await presign(
            client, user, pid, bid, key="doc.txt", method="PUT", content_length=5
        )
        url, headers = signed.json()["url"], signed.json()["headers"]
        assert url.startswith(f"http://127.0.0.1:8000/v1/storage/{bid}/doc.txt?")
        for attempt, method, body in (
            (url.replace("doc.txt", "other.txt"), "PUT", b"hello"),
            (url.replace(bid, other), "PUT", b"hello"),
            (with_query(url, content_length="6"), "PUT", b"hello!"),
            (with_query(url, signature="0" * 64), "PUT", b"hello"),
            (with_query(url, content_type="text/html"), "PUT", b"hello"),
            (url.split("?")[0], "PUT", b"hello"),
            (url, "GET", b""),
        ):
            refused = await client.request(method, attempt, content=body or None)
            assert refused.status_code in (403, 404), (attempt, refused.text)
            if refused.status_code == 403:
                assert refused.json()["code"] == "signature_invalid", refused.text
        longer = await client.put(url, content=b"hello, world")
        assert (longer.status_code, longer.json()["code"]) == (413, "payload_too_large")
        bad_md5 = await client.put(url, content=b"hello", headers={"Content-MD5": md5_b64(b"x")})
        assert (bad_md5.status_code, bad_md5.json()["code"]) == (400, "bad_digest")
        assert stored_files(tmp_path, bid) == []

        checked = await client.put(
            url,
            content=b"hello",
            headers={**headers, "x-amz-checksum-sha256": sha256_b64(b"hello")},
        )
        assert checked.status_code == 200, checked.text
        head = await client.get(
            f"{objects_url(pid, bid)}/metadata", params={"key": "doc.txt"}, headers=user.headers
        )
        assert head.json()["checksum_sha256"]

        soon = await presign(client, user, pid, bid, key="doc.txt", method="GET", expires_in=1)
        assert (await client.head(soon.json()["url"])).status_code == 200
        await asyncio.sleep(2.1)
        expired = await client.get(soon.json()["url"])
        assert (expired.status_code, expired.json()["code"]) == (403, "signature_expired")

        for key in ("a/../b", "a\x00b", "/lead", "./x", "k" * 1025):
            api = await presign(client, user, pid, bid, key=key, method="GET")
            assert api.status_code == 422, (key, api.text)
            assert api.json()["errors"][0]["field"] == "key"
            meta = await client.get(
                f"{objects_url(pid, bid)}/metadata", params={"key": key}, headers=user.headers
            )
            assert meta.status_code == 422, (key, meta.text)
        for raw in ("a/%2E%2E/b", "a%00b", "%2Flead"):
            direct = await client.put(
                f"http://127.0.0.1:8000/v1/storage/{bid}/{raw}?expires=9999999999&signature=x",
                content=b"x",
            )
            assert (direct.status_code, direct.json()["code"]) == (400, "invalid_key"), raw
        assert len(stored_files(tmp_path, bid)) == 2  # doc.txt: its record and its data


async def test_multipart_rules_wrong_order_small_parts_abort(
    tmp_path: Path, test_database_url: str
) -> None:
    async with cloud_client(local_settings(tmp_path), test_database_url) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name="parts")
        base = objects_url(pid, bid)
        begun = await client.post(f"{base}/uploads", json={"key": "big"}, headers=user.headers)
        upload_id = begun.json()["upload_id"]
        etags = {}
        for number, size in ((1, PART_BYTES), (2, 10), (3, 10)):
            signed = await client.post(
                f"{base}/uploads/{upload_id}/parts",
                json={"part_number": number, "content_length": size},
                headers=user.headers,
            )
            sent = await client.put(signed.json()["url"], content=b"p" * size)
            assert sent.status_code == 200, sent.text
            etags[number] = sent.headers["etag"].strip('"')
        complete = f"{base}/uploads/{upload_id}/complete"
        for parts, status, code in (
            ([2, 1], 422, "invalid_part_order"),
            ([1, 1], 422, "invalid_part_order"),
            ([1, 2, 3], 422, "part_too_small"),
        ):
            body = {"parts": [{"part_number": n, "etag": etags[n]} for n in parts]}
            refused = await client.post(complete, json=body, headers=user.headers)
            assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
        wrong_etag = {"parts": [{"part_number": 1, "etag": "0" * 32}]}
        refused = await client.post(complete, json=wrong_etag, headers=user.headers)
        assert (refused.status_code, refused.json()["code"]) == (422, "invalid_part")
        listed = await client.get(base, headers=user.headers)
        assert listed.json()["items"] == []
        aborted = await client.delete(f"{base}/uploads/{upload_id}", headers=user.headers)
        assert aborted.status_code == 204
        gone = await client.post(complete, json=wrong_etag, headers=user.headers)
        assert (gone.status_code, gone.json()["code"]) == (404, "upload_not_found")
        assert stored_files(tmp_path, bid) == []


@pytest.mark.parametrize("sent_bytes", [0, 100_000])
async def test_client_gone_mid_body_stores_nothing(
    tmp_path: Path, test_database_url: str, sent_bytes: int
) -> None:
    size = 1_000_000
    async with cloud_app(local_settings(tmp_path), test_database_url) as (app, client):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name="cut")
        signed = await presign(
            client, user, pid, bid, key="cut.bin", method="PUT", content_length=size
        )
        target = urlsplit(signed.json()["url"])
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        serving = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
                + b"x" * sent_bytes
            )
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.5)
        finally:
            server.should_exit = True
            await serving
        listed = await client.get(objects_url(pid, bid), headers=user.headers)
        assert listed.json()["items"] == []
    assert stored_files(tmp_path, bid) == []


async def test_abandoned_multipart_uploads_expire(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_app(local_settings(tmp_path), test_database_url) as (app, client):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        bid = await create_bucket(client, user, pid, name="leftovers")
        base = objects_url(pid, bid)
        uploads = []
        for key in ("old", "recent"):
            begun = await client.post(f"{base}/uploads", json={"key": key}, headers=user.headers)
            upload_id = begun.json()["upload_id"]
            signed = await client.post(
                f"{base}/uploads/{upload_id}/parts",
                json={"part_number": 1, "content_length": PART_BYTES},
                headers=user.headers,
            )
            sent = await client.put(signed.json()["url"], content=b"p" * PART_BYTES)
            assert sent.status_code == 200, sent.text
            uploads.append(upload_id)
        parts_before = stored_files(tmp_path, bid)
        await db.execute(
            update(BucketUpload)
            .where(BucketUpload.id == uuid.UUID(uploads[0]))
            .values(created_at=func.now() - timedelta(days=8))
        )
        await db.commit()

        cloud = app.state.cloud
        assert await expire_abandoned_uploads(cloud, cloud.provider.storage) == 1

        gone = await client.delete(f"{base}/uploads/{uploads[0]}", headers=user.headers)
        assert (gone.status_code, gone.json()["code"]) == (404, "upload_not_found")
        remaining = (await db.scalars(select(BucketUpload.id))).all()
        assert [str(u) for u in remaining] == [uploads[1]]
        # The expired upload's part is gone from disk; the recent one's is still there.
        assert len(stored_files(tmp_path, bid)) < len(parts_before)
        assert stored_files(tmp_path, bid)
