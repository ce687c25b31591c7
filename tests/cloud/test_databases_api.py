"""The databases API's rules: validation, roles, quotas, tenant isolation (through the API
and with real connections), and that no password leaks anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Resource, ResourceEvent
from lariba.providers.local.database_server import DatabaseServer
from tests.fixtures.cloud import cloud_client, cloud_settings
from tests.fixtures.databases import (
    create_database,
    databases_url,
    local_provider,
    reveal,
    snapshot_ready,
    succeeded,
)
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.routes import operations

VALID: dict[str, Any] = {"name": "orders", "size": "small", "storage_gb": 1}
# Bodies a member's request would carry, by method and last path segment.
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "{database_id}"): {"labels": {"stolen": "yes"}},
    ("POST", "resize"): {"size": "medium"},
    ("POST", "snapshots"): {"name": "stolen"},
    ("POST", "restore"): {"name": "stolen"},
}


async def _project(client: httpx.AsyncClient) -> tuple[TestUser, str]:
    user = await sign_up(client)
    return user, (await create_project(client, user))["id"]


async def _drop_all(client: httpx.AsyncClient, user: TestUser, project_id: str) -> None:
    """Deletes the project's databases: the databases server is shared by the run."""
    listed = await client.get(databases_url(project_id), headers=user.headers)
    for database in listed.json()["items"]:
        gone = await client.delete(databases_url(project_id, database["id"]), headers=user.headers)
        await succeeded(client, user, gone.json())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"size": "gigantic"}, "size"),
        ({"engine_version": "9"}, "engine_version"),
        ({"storage_gb": 0}, "storage_gb"),
        ({"storage_gb": -5}, "storage_gb"),
        ({"storage_gb": 70000}, "storage_gb"),
        ({"storage_gb": "lots"}, "storage_gb"),
        ({"region": "mars-1"}, "region"),
        ({"name": "Orders_1"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"password": "mine"}, "password"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    tmp_path: Path,
    test_database_url: str,
    db: AsyncSession,
    databases_server: DatabaseServer,
    change: dict[str, Any],
    field: str,
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path),
        test_database_url,
        provider=local_provider(databases_server, tmp_path),
        run_worker=False,
    ) as client:
        user, pid = await _project(client)
        response = await client.post(
            databases_url(pid), json={**VALID, **change}, headers=user.headers
        )
    assert response.status_code == 422, response.text
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), response.json()
    assert await db.scalar(select(func.count()).select_from(Resource)) == 0


async def test_resize_refuses_shrinking_storage_and_no_change(
    tmp_path: Path, test_database_url: str, databases_server: DatabaseServer
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path),
        test_database_url,
        provider=local_provider(databases_server, tmp_path),
    ) as client:
        user, pid = await _project(client)
        created = await create_database(client, user, pid, storage_gb=3)
        await succeeded(client, user, created)
        dbid = created["resource"]["id"]
        url = databases_url(pid, dbid, "resize")
        shrink = await client.post(url, json={"storage_gb": 2}, headers=user.headers)
        assert shrink.status_code == 422, shrink.text
        assert shrink.json()["errors"][0]["field"] == "storage_gb"
        same = await client.post(url, json={"size": "small"}, headers=user.headers)
        assert (same.status_code, same.json()["code"]) == (409, "size_unchanged")
        unknown = await client.post(url, json={"size": "huge"}, headers=user.headers)
        assert unknown.status_code == 422
        await _drop_all(client, user, pid)


async def test_quotas_count_databases_and_their_storage(
    tmp_path: Path, test_database_url: str, databases_server: DatabaseServer
) -> None:
    settings = cloud_settings(tmp_path, quota_databases=2, quota_database_storage_gb=10)
    async with cloud_client(
        settings,
        test_database_url,
        provider=local_provider(databases_server, tmp_path),
        run_worker=False,
    ) as client:
        user, pid = await _project(client)
        await create_database(client, user, pid, name="one", storage_gb=8)
        too_big = await client.post(
            databases_url(pid), json={**VALID, "name": "two", "storage_gb": 3}, headers=user.headers
        )
        assert too_big.status_code == 403, too_big.text
        assert (too_big.json()["quota"], too_big.json()["requested"]) == ("database_storage_gb", 3)
        await create_database(client, user, pid, name="two", storage_gb=2)
        third = await client.post(
            databases_url(pid), json={**VALID, "name": "three"}, headers=user.headers
        )
        assert third.status_code == 403, third.text
        assert third.json()["quota"] == "databases"
        quotas = (await client.get(f"/v1/projects/{pid}/quotas", headers=user.headers)).json()
        by_name = {q["name"]: q for q in quotas["items"]}
        assert by_name["databases"]["reserved"] == 2
        assert by_name["database_storage_gb"]["reserved"] == 10


async def test_only_admins_see_the_password_and_viewers_change_nothing(
    tmp_path: Path, test_database_url: str, databases_server: DatabaseServer
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path),
        test_database_url,
        provider=local_provider(databases_server, tmp_path),
        run_worker=False,
    ) as client:
        owner, pid = await _project(client)
        created = await create_database(client, owner, pid)
        dbid = created["resource"]["id"]
        for role in ("member", "viewer"):
            teammate = await sign_up(client)
            invite = await client.post(
                f"/v1/projects/{pid}/invitations",
                json={"email": teammate.email, "role": role},
                headers=owner.headers,
            )
            accepted = await client.post(
                f"/v1/invitations/{invite.json()['token']}/accept", headers=teammate.headers
            )
            assert accepted.status_code in (200, 204), accepted.text
            refused = await client.post(
                databases_url(pid, dbid, "credentials", "reveal"), headers=teammate.headers
            )
            assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_role")
            reset = await client.post(
                databases_url(pid, dbid, "reset-password"), headers=teammate.headers
            )
            assert reset.status_code == 403
            seen = await client.get(databases_url(pid, dbid), headers=teammate.headers)
            assert seen.status_code == 200
            assert created["credentials"]["password"] not in seen.text
        viewer_create = await client.post(
            databases_url(pid), json={**VALID, "name": "mine"}, headers=teammate.headers
        )
        assert viewer_create.status_code == 403


async def test_every_database_route_is_404_to_another_tenant(
    tmp_path: Path,
    test_database_url: str,
    db: AsyncSession,
    app: FastAPI,
    databases_server: DatabaseServer,
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path),
        test_database_url,
        provider=local_provider(databases_server, tmp_path),
    ) as client:
        alice, alice_pid = await _project(client)
        bob, bob_pid = await _project(client)
        created = await create_database(client, alice, alice_pid, name="secret")
        await succeeded(client, alice, created)
        dbid = created["resource"]["id"]
        snapshotted = await client.post(
            databases_url(alice_pid, dbid, "snapshots"), headers=alice.headers
        )
        sid = snapshotted.json()["resource"]["id"]
        await snapshot_ready(client, alice, alice_pid, sid)
        before = (await db.execute(select(Resource.__table__))).all()
        events_before = await db.scalar(select(func.count()).select_from(ResourceEvent))
        routes = [
            op for op in operations(app) if "{database_id}" in op.path or "{snapshot_id}" in op.path
        ]
        assert len(routes) >= 14
        for op in routes:
            for project_id in (alice_pid, bob_pid):
                url = op.url(
                    project_id=project_id,
                    database_id=dbid,
                    snapshot_id=sid,
                    operation_id=created["id"],
                )
                body = _BODIES.get((op.method, op.path.rsplit("/", 1)[-1]))
                response = await client.request(op.method, url, json=body, headers=bob.headers)
                assert response.status_code == 404, (op.method, url, response.text)
                assert "secret" not in response.text
        # A database id given as a snapshot id (and back) is not found either.
        crossed = await client.get(
            f"/v1/projects/{alice_pid}/database-snapshots/{dbid}", headers=alice.headers
        )
        assert crossed.status_code == 404
        crossed = await client.get(databases_url(alice_pid, sid), headers=alice.headers)
        assert crossed.status_code == 404
        listed = await client.get(f"/v1/projects/{bob_pid}/database-snapshots", headers=bob.headers)
        assert listed.json()["items"] == []
        assert (await db.execute(select(Resource.__table__))).all() == before
        assert await db.scalar(select(func.count()).select_from(ResourceEvent)) == events_before
        await _drop_all(client, alice, alice_pid)


async def test_a_tenants_credentials_open_no_other_database(
    tmp_path: Path, test_database_url: str, databases_server: DatabaseServer
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path),
        test_database_url,
        provider=local_provider(databases_server, tmp_path),
    ) as client:
        alice, alice_pid = await _project(client)
        bob, bob_pid = await _project(client)
        mine = await create_database(client, alice, alice_pid, name="mine")
        theirs = await create_database(client, bob, bob_pid, name="theirs")
        await succeeded(client, alice, mine)
        await succeeded(client, bob, theirs)
        a = await reveal(client, alice, alice_pid, mine["resource"]["id"])
        b = await reveal(client, bob, bob_pid, theirs["resource"]["id"])
        with psycopg.connect(b["uri"]) as conn:
            conn.execute("CREATE TABLE secrets (v text)")
            conn.execute("INSERT INTO secrets VALUES ('bob only')")

        def connect_as_alice(database: str) -> None:
            with psycopg.connect(
                host=a["host"],
                port=a["port"],
                user=a["username"],
                password=a["password"],
                dbname=database,
                connect_timeout=5,
            ):
                pass

        connect_as_alice(a["database"])
        for database in (b["database"], "postgres", "template1"):
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                connect_as_alice(database)
        # Alice's role has no power beyond her database.
        with psycopg.connect(a["uri"]) as conn:
            row = conn.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
                " FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert row == (False, False, False, False, False)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'GRANT CONNECT ON DATABASE "{b["database"]}" TO CURRENT_USER')
        await _drop_all(client, alice, alice_pid)
        await _drop_all(client, bob, bob_pid)


async def test_no_password_in_lists_operations_events_audit_or_logs(
    tmp_path: Path,
    test_database_url: str,
    db: AsyncSession,
    databases_server: DatabaseServer,
    capfd: pytest.CaptureFixture[str],
) -> None:
    passwords: list[str] = []
    bodies: list[str] = []
    async with cloud_client(
        cloud_settings(tmp_path),
        test_database_url,
        provider=local_provider(databases_server, tmp_path),
    ) as client:
        user, pid = await _project(client)
        created = await create_database(client, user, pid)
        passwords.append(created["credentials"]["password"])
        dbid = created["resource"]["id"]
        await succeeded(client, user, created)
        passwords.append((await reveal(client, user, pid, dbid))["password"])
        reset = await client.post(databases_url(pid, dbid, "reset-password"), headers=user.headers)
        passwords.append(reset.json()["credentials"]["password"])
        await succeeded(client, user, reset.json())
        snapshotted = await client.post(databases_url(pid, dbid, "snapshots"), headers=user.headers)
        sid = snapshotted.json()["resource"]["id"]
        await snapshot_ready(client, user, pid, sid)
        restored = await client.post(
            f"/v1/projects/{pid}/database-snapshots/{sid}/restore",
            json={"name": "copy"},
            headers=user.headers,
        )
        passwords.append(restored.json()["credentials"]["password"])
        await succeeded(client, user, restored.json())
        for path in (
            databases_url(pid),
            databases_url(pid, dbid),
            databases_url(pid, dbid, "operations"),
            databases_url(pid, dbid, "events"),
            databases_url(pid, dbid, "snapshots"),
            f"/v1/projects/{pid}/operations",
            f"/v1/projects/{pid}/events",
            f"/v1/projects/{pid}/database-snapshots",
            f"/v1/projects/{pid}/quotas",
        ):
            response = await client.get(path, headers=user.headers)
            bodies.append(response.text)
        await _drop_all(client, user, pid)
    assert len(set(passwords)) == 3  # create = reveal, reset, restore
    tables = ("resources", "operations", "resource_events", "audit_events", "procrastinate_jobs")
    for table in tables:
        rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
        bodies.append(json.dumps([[str(v) for v in row] for row in rows]))
    audit = (await db.execute(text("SELECT action FROM audit_events"))).scalars().all()
    assert "database.credentials.reveal" in audit
    logs = capfd.readouterr()
    server_log = (databases_server.pgdata / "log").read_text()
    for password in passwords:
        for body in bodies:
            assert password not in body
        assert password not in logs.out
        assert password not in logs.err
        assert password not in server_log
