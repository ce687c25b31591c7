"""The local provider's databases against real PostgreSQL servers: its own (started with a
TCP listener), and one the operator names by URL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lariba.providers.base import PermanentProviderError, ProviderNotFound
from lariba.providers.databases import DatabaseSpec, DatabaseState
from lariba.providers.local import local_provider
from lariba.providers.local.database import LocalDatabases
from lariba.providers.local.database_server import DatabaseServer
from tests.fixtures.database import make_settings
from tests.fixtures.databases import local_databases
from tests.fixtures.moto import free_port


def _spec(**changes: object) -> DatabaseSpec:
    values: dict[str, object] = {
        "resource_id": uuid.uuid4(),
        "project_id": uuid.uuid4(),
        "name": "orders",
        "region": "local",
        "engine_version": "18",
        "size": "small",
        "storage_gb": 1,
        "password": uuid.uuid4().hex,
    }
    values.update(changes)
    return DatabaseSpec(**values)  # type: ignore[arg-type]


def _tenant_uri(host: str | None, port: int | None, name: str, password: str) -> str:
    return f"postgresql://{name}:{password}@{host}:{port}/{name}"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose databases server (started by the provider) is stopped afterwards."""
    yield tmp_path
    DatabaseServer(tmp_path / "databases-server").stop()


async def test_default_provider_runs_its_own_server_with_tcp(own_server: Path) -> None:
    port = free_port()
    settings = make_settings(own_server, local_databases_port=port)
    databases = local_provider(settings).database
    assert isinstance(databases, LocalDatabases)
    spec = _spec()
    created = await databases.create_database(spec)
    assert (created.host, created.port, created.state) == (
        "127.0.0.1",
        port,
        DatabaseState.available,
    )
    assert (own_server / "databases-server" / "PG_VERSION").exists()
    uri = _tenant_uri(created.host, created.port, created.username, spec.password)
    with psycopg.connect(uri, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (created.username,)
    # Tenants reach nothing else: the server's own databases are closed to them too.
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(uri.rsplit("/", 1)[0] + "/postgres", connect_timeout=5)
    # The superuser has no password: it cannot log in over TCP at all.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=5)
    await databases.delete_database(region="local", provider_id=created.provider_id)
    assert await databases.find_database(region="local", resource_id=spec.resource_id) is None


async def test_concurrent_first_creates_on_a_new_server(own_server: Path) -> None:
    """The first calls close the server's own databases to tenants, once: concurrent
    GRANT/REVOKEs on one database would fail with "tuple concurrently updated"."""
    databases = local_provider(make_settings(own_server)).database
    assert databases is not None
    specs = [_spec() for _ in range(4)]
    created = await asyncio.gather(*(databases.create_database(spec) for spec in specs))
    assert {c.state for c in created} == {DatabaseState.available}
    for database in created:
        await databases.delete_database(region="local", provider_id=database.provider_id)


async def test_operator_named_server(tmp_path: Path, databases_server: DatabaseServer) -> None:
    address = databases_server.ensure_running()
    admin, admin_password = f"ops_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(address.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(admin), sql.Literal(admin_password)
            )
        )
    try:
        settings = make_settings(
            tmp_path,
            local_databases_url=f"postgresql://{admin}:{admin_password}@127.0.0.1:{address.port}/postgres",
        )
        databases = local_provider(settings).database
        assert databases is not None
        spec = _spec()
        created = await databases.create_database(spec)
        assert (created.host, created.port) == ("127.0.0.1", address.port)
        uri = _tenant_uri(created.host, created.port, created.username, spec.password)
        with psycopg.connect(uri, connect_timeout=5) as conn:
            conn.execute("CREATE TABLE t (v int)")
        await databases.delete_database(region="local", provider_id=created.provider_id)
        assert not (tmp_path / "databases-server").exists()
    finally:
        with psycopg.connect(address.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(admin)))


async def test_create_is_idempotent_and_keeps_the_data(
    tmp_path: Path, databases_server: DatabaseServer
) -> None:
    databases = local_databases(databases_server, tmp_path)
    spec = _spec()
    first = await databases.create_database(spec)
    uri = _tenant_uri(first.host, first.port, first.username, spec.password)
    with psycopg.connect(uri) as conn:
        conn.execute("CREATE TABLE kept (v int)")
    again = await databases.create_database(spec)
    assert again.provider_id == first.provider_id
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
    found = await databases.find_database(region="local", resource_id=spec.resource_id)
    assert found is not None
    assert (found.size, found.storage_gb) == ("small", 1)
    listed = await databases.list_databases(region="local")
    assert spec.resource_id in {d.resource_id for d in listed}
    metrics = await databases.metrics(region="local", provider_id=first.provider_id)
    assert metrics.size_bytes > 0
    await databases.delete_database(region="local", provider_id=first.provider_id)
    await databases.delete_database(region="local", provider_id=first.provider_id)
    with pytest.raises(ProviderNotFound):
        await databases.describe_database(region="local", provider_id=first.provider_id)


async def test_a_restore_cut_short_is_started_over(
    tmp_path: Path, databases_server: DatabaseServer
) -> None:
    databases = local_databases(databases_server, tmp_path)
    source_spec = _spec()
    source = await databases.create_database(source_spec)
    with psycopg.connect(
        _tenant_uri(source.host, source.port, source.username, source_spec.password)
    ) as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS v")
    snapshot_id = uuid.uuid4()
    snapshot = await databases.create_snapshot(
        region="local",
        database_provider_id=source.provider_id,
        resource_id=snapshot_id,
        project_id=source_spec.project_id,
    )
    same = await databases.create_snapshot(
        region="local",
        database_provider_id=source.provider_id,
        resource_id=snapshot_id,
        project_id=source_spec.project_id,
    )
    assert same.provider_id == snapshot.provider_id
    assert not list((tmp_path / "database-snapshots").glob("*.partial"))

    spec = _spec(restore_from=snapshot.provider_id)
    name = databases.names(spec.resource_id).database
    # What a crash in the middle of pg_restore leaves: the database, marked as restoring.
    with psycopg.connect(databases_server.ensure_running().admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal('{"lariba": true, "restoring": true}')
            )
        )
    described = await databases.describe_database(region="local", provider_id=name)
    assert described.state is DatabaseState.creating
    restored = await databases.create_database(spec)
    assert restored.state is DatabaseState.available
    with psycopg.connect(
        _tenant_uri(restored.host, restored.port, restored.username, spec.password)
    ) as conn:
        assert conn.execute("SELECT sum(v) FROM t").fetchone() == (55,)
    for provider_id in (source.provider_id, restored.provider_id):
        await databases.delete_database(region="local", provider_id=provider_id)
    await databases.delete_snapshot(region="local", provider_id=snapshot.provider_id)
    assert await databases.find_snapshot(region="local", resource_id=snapshot_id) is None


async def test_refusals(tmp_path: Path, databases_server: DatabaseServer) -> None:
    databases = local_databases(databases_server, tmp_path)
    with pytest.raises(PermanentProviderError, match="PostgreSQL 18, not 16") as refused:
        await databases.create_database(_spec(engine_version="16"))
    assert refused.value.code == "EngineVersionUnavailable"
    with pytest.raises(ProviderNotFound):
        await databases.create_database(_spec(restore_from="snap-0000"))
    with pytest.raises(ProviderNotFound):
        await databases.describe_snapshot(region="local", provider_id="../../etc/passwd")
