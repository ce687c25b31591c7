"""Databases end to end through HTTP on the local provider, with real connections over TCP
to the databases it makes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.databases.models import DatabaseCredential
from lariba.cloud.engine.models import Resource
from lariba.cloud.engine.reconciler import resync
from lariba.cloud.tasks import KINDS
from lariba.providers.local.database_server import DatabaseServer
from tests.fixtures.cloud import cloud_app, cloud_client, cloud_settings
from tests.fixtures.databases import (
    create_database,
    databases_url,
    get_database,
    local_provider,
    reveal,
    snapshot_ready,
    succeeded,
)
from tests.fixtures.identity import create_project, sign_up


def _rows(uri: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri, connect_timeout=5) as conn:
        return conn.execute("SELECT id, item FROM orders ORDER BY id").fetchall()


def _connection_limit(server: DatabaseServer, database: str) -> int:
    with psycopg.connect(server.ensure_running().admin_url) as conn:
        row = conn.execute(
            "SELECT datconnlimit FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_database_lifecycle_end_to_end(
    tmp_path: Path,
    test_database_url: str,
    db: AsyncSession,
    databases_server: DatabaseServer,
) -> None:
    provider = local_provider(databases_server, tmp_path)
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, provider=provider
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]

        created = await create_database(client, user, pid, name="orders", storage_gb=2)
        dbid = created["resource"]["id"]
        password = created["credentials"]["password"]
        assert created["credentials"]["username"] == f"db_{uuid.UUID(dbid).hex}"
        assert len(password) >= 32
        await succeeded(client, user, created)
        database = await get_database(client, user, pid, dbid)
        assert database["status"] == "available"
        assert database["engine_version"] == "18"
        endpoint = database["endpoint"]
        assert endpoint["host"] == "127.0.0.1"
        assert endpoint["port"] == databases_server.ensure_running().port

        # Connect with the revealed connection string over TCP; write rows.
        credentials = await reveal(client, user, pid, dbid)
        assert credentials["password"] == password
        # Stored sealed, never in clear.
        [credential] = (await db.scalars(select(DatabaseCredential))).all()
        assert password not in credential.ciphertext + credential.wrapped_key
        uri = credentials["uri"]
        assert uri.startswith("postgresql://")
        with psycopg.connect(uri, connect_timeout=5) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
            conn.execute("INSERT INTO orders VALUES (1, 'tea'), (2, 'scones')")
        assert _rows(uri) == [(1, "tea"), (2, "scones")]

        # Measurable for monitoring.
        metrics = await client.get(databases_url(pid, dbid, "metrics"), headers=user.headers)
        assert metrics.status_code == 200, metrics.text
        assert metrics.json()["size_bytes"] > 1_000_000
        assert metrics.json()["connections"] == 0

        # Snapshot, then restore it into a new database that has the rows.
        snapshotted = await client.post(
            databases_url(pid, dbid, "snapshots"), json={"name": "first"}, headers=user.headers
        )
        assert snapshotted.status_code == 202, snapshotted.text
        await succeeded(client, user, snapshotted.json())
        sid = snapshotted.json()["resource"]["id"]
        snapshot = (
            await client.get(f"/v1/projects/{pid}/database-snapshots/{sid}", headers=user.headers)
        ).json()
        assert snapshot["status"] == "available"
        assert snapshot["database_id"] == dbid
        assert snapshot["size_bytes"] > 0
        listed = await client.get(databases_url(pid, dbid, "snapshots"), headers=user.headers)
        assert [s["id"] for s in listed.json()["items"]] == [sid]

        restored = await client.post(
            f"/v1/projects/{pid}/database-snapshots/{sid}/restore",
            json={"name": "orders-copy"},
            headers=user.headers,
        )
        assert restored.status_code == 202, restored.text
        assert restored.headers["cache-control"] == "no-store"
        await succeeded(client, user, restored.json())
        copy_id = restored.json()["resource"]["id"]
        copy = await get_database(client, user, pid, copy_id)
        assert copy["restored_from_snapshot"] == sid
        assert copy["storage_gb"] == 2
        copy_uri = (await reveal(client, user, pid, copy_id))["uri"]
        assert copy_uri != uri
        assert _rows(copy_uri) == [(1, "tea"), (2, "scones")]
        # The copy is its own: a change there leaves the original alone.
        with psycopg.connect(copy_uri) as conn:
            conn.execute("INSERT INTO orders VALUES (3, 'jam')")
        assert len(_rows(uri)) == 2

        # Resize: a bigger size and more storage.
        resized = await client.post(
            databases_url(pid, dbid, "resize"),
            json={"size": "medium", "storage_gb": 5},
            headers=user.headers,
        )
        assert resized.status_code == 202, resized.text
        assert resized.json()["params"]["to_size"] == "medium"
        await succeeded(client, user, resized.json())
        database = await get_database(client, user, pid, dbid)
        assert (database["status"], database["size"], database["storage_gb"]) == (
            "available",
            "medium",
            5,
        )
        assert _connection_limit(databases_server, endpoint["database"]) == 50

        # Reset the password: the old one stops working, the new one works.
        reset = await client.post(databases_url(pid, dbid, "reset-password"), headers=user.headers)
        assert reset.status_code == 202, reset.text
        new_password = reset.json()["credentials"]["password"]
        assert new_password != password
        await succeeded(client, user, reset.json())
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _rows(uri)
        new_uri = (await reveal(client, user, pid, dbid))["uri"]
        assert _rows(new_uri) == [(1, "tea"), (2, "scones")]

        # Delete with a final snapshot: the database is gone, the snapshot stays.
        deleted = await client.delete(
            databases_url(pid, dbid), params={"final_snapshot": "true"}, headers=user.headers
        )
        assert deleted.status_code == 202, deleted.text
        await succeeded(client, user, deleted.json())
        database = await get_database(client, user, pid, dbid)
        assert database["status"] == "deleted"
        with pytest.raises(psycopg.OperationalError):
            _rows(new_uri)
        snapshots = (
            await client.get(f"/v1/projects/{pid}/database-snapshots", headers=user.headers)
        ).json()["items"]
        final = [s for s in snapshots if s["final"]]
        assert len(final) == 1
        assert final[0]["database_id"] == dbid
        await snapshot_ready(client, user, pid, final[0]["id"])

        # Restoring the final snapshot brings the data back as it was at deletion.
        again = await client.post(
            f"/v1/projects/{pid}/database-snapshots/{final[0]['id']}/restore",
            json={"name": "orders-again", "size": "large"},
            headers=user.headers,
        )
        assert again.status_code == 202, again.text
        await succeeded(client, user, again.json())
        again_uri = (await reveal(client, user, pid, again.json()["resource"]["id"]))["uri"]
        assert _rows(again_uri) == [(1, "tea"), (2, "scones")]

        # Clean up the databases this test made on the shared server.
        for remaining in (copy_id, again.json()["resource"]["id"]):
            gone = await client.delete(databases_url(pid, remaining), headers=user.headers)
            await succeeded(client, user, gone.json())

    # Passwords of deleted databases are not kept, even sealed.
    assert (await db.scalars(select(DatabaseCredential))).all() == []
    kinds = (await db.scalars(select(Resource.kind).order_by(Resource.created_at))).all()
    assert kinds.count("database") == 3


async def test_a_database_dropped_outside_lariba_is_drift(
    tmp_path: Path, test_database_url: str, databases_server: DatabaseServer
) -> None:
    provider = local_provider(databases_server, tmp_path)
    async with cloud_app(cloud_settings(tmp_path), test_database_url, provider=provider) as (
        app,
        client,
    ):
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_database(client, user, pid)
        await succeeded(client, user, created)
        dbid = created["resource"]["id"]
        name = (await get_database(client, user, pid, dbid))["provider_id"]
        with psycopg.connect(databases_server.ensure_running().admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

        assert await resync(app.state.cloud, KINDS, app.state.jobs.app) == 1
        for _ in range(100):
            database = await get_database(client, user, pid, dbid)
            if database["status"] == "error":
                break
            await asyncio.sleep(0.1)
        assert database["status"] == "error"
        assert "deleted outside Lariba" in database["status_reason"]
        events = await client.get(databases_url(pid, dbid, "events"), headers=user.headers)
        assert events.json()["items"][0]["type"] == "drift"
        # Delete still works, and cleans up the role left behind.
        gone = await client.delete(databases_url(pid, dbid), headers=user.headers)
        await succeeded(client, user, gone.json())
        with psycopg.connect(databases_server.ensure_running().admin_url) as conn:
            assert (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
                is None
            )


async def test_catalog_lists_database_sizes_engines_and_prices(
    tmp_path: Path, test_database_url: str
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, run_worker=False
    ) as client:
        user = await sign_up(client)
        sizes = (await client.get("/v1/catalog/database-sizes", headers=user.headers)).json()
        assert [s["name"] for s in sizes["items"]] == ["small", "medium", "large"]
        assert sizes["items"][0]["price_per_month_usd"] == "3.650"
        engines = (await client.get("/v1/catalog/database-engines", headers=user.headers)).json()
        assert engines["items"] == [{"version": "18", "display_name": "PostgreSQL 18"}]
        prices = (await client.get("/v1/catalog/prices", headers=user.headers)).json()["items"]
        assert {
            "resource_type": "database",
            "meter": "database",
            "size": "large",
            "unit": "hour",
            "price_usd": "0.02",
        } in prices
