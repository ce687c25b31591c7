"""Databases of the local provider: a role and a database per resource on a PostgreSQL
server Lariba manages (its own, with a TCP listener, or one the operator names), snapshots
as ``pg_dump`` archives on local disk.

Each database is owned by its own login role (no superuser, createdb, createrole or
replication) and ``CONNECT`` on it is revoked from ``PUBLIC``, so a tenant's credentials
open its own database and no other. Passwords reach the server only as SCRAM verifiers,
never in clear, so they cannot end up in the server's log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lariba.providers.base import (
    PermanentProviderError,
    ProviderNotFound,
    TransientProviderError,
)
from lariba.providers.catalog import Catalog
from lariba.providers.databases import (
    DatabaseMetrics,
    DatabaseNames,
    DatabaseSpec,
    DatabaseState,
    ObservedDatabase,
    ObservedSnapshot,
    SnapshotState,
)
from lariba.providers.local.database_server import ClusterAddress, DatabaseServer, pg_binary

log = structlog.get_logger(__name__)

_PREFIX = "db_"
_SNAPSHOT_PREFIX = "snap-"
# Marks Lariba's databases on a shared server (their comment is this JSON).
_MARK = "lariba"
_SCRAM_ITERATIONS = 4096
_DEFAULT_CONNECTION_LIMIT = 20
_TOOL_TIMEOUT_SECONDS = 3600


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677), so
    ``ALTER ROLE ... PASSWORD`` never carries the password itself."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _unavailable(exc: Exception) -> TransientProviderError:
    return TransientProviderError(
        f"the database server is not reachable: {exc}", code="DatabaseServerUnavailable"
    )


def _refused(exc: psycopg.Error) -> PermanentProviderError | TransientProviderError:
    code = exc.sqlstate or type(exc).__name__
    # Serialization failures, deadlocks, and two sessions changing one catalog row (two
    # GRANTs on one database) succeed when tried again.
    if code.startswith("40") or (code == "XX000" and "concurrently" in str(exc)):
        return TransientProviderError(str(exc).strip(), code=code)
    return PermanentProviderError(str(exc).strip(), code=code)


def operator_cluster(admin_url: str) -> Callable[[], ClusterAddress]:
    """A server the operator runs: Lariba administers it with ``admin_url`` (a superuser),
    tenants connect to the same host and port."""
    params = conninfo_to_dict(admin_url)
    host = str(params.get("host") or "127.0.0.1")
    port = int(params.get("port") or 5432)
    address = ClusterAddress(admin_url=admin_url, host=host, port=port)
    return lambda: address


class LocalDatabases:
    """``DatabaseProvider`` on one PostgreSQL server. ``cluster`` says where it is, starting
    it first if it is Lariba's own (``embedded_cluster``)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        cluster: Callable[[], ClusterAddress],
        snapshots_dir: Path,
        protect_server_databases: bool = False,
    ) -> None:
        self._catalog = catalog
        self._cluster = cluster
        self._snapshots = snapshots_dir
        # On Lariba's own server, the ``postgres`` database is closed to tenants too.
        self._protect = protect_server_databases
        self._protected = False
        self._protecting = asyncio.Lock()

    # -- plumbing ------------------------------------------------------------------

    async def _address(self) -> ClusterAddress:
        try:
            return await asyncio.to_thread(self._cluster)
        except (OSError, RuntimeError) as exc:
            raise _unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        address = await self._address()
        try:
            conn = await psycopg.AsyncConnection.connect(
                address.admin_url, autocommit=True, connect_timeout=10
            )
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc
        try:
            if self._protect and not self._protected:
                async with self._protecting:
                    if not self._protected:
                        await self._close_server_databases(conn)
                        self._protected = True
            yield conn
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from exc
        except psycopg.Error as exc:
            raise _refused(exc) from exc
        finally:
            await conn.close()

    async def _close_server_databases(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Revokes ``CONNECT`` from ``PUBLIC`` on the server's own databases, where it is
        still granted (PostgreSQL's default)."""
        rows = await (
            await conn.execute(
                "SELECT datname FROM pg_database d WHERE datname IN ('postgres', 'template1')"
                " AND EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d',"
                " d.datdba))) a WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT')"
            )
        ).fetchall()
        for (name,) in rows:
            await conn.execute(
                sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                    sql.Identifier(name)
                )
            )

    def _connection_limit(self, size: str) -> int:
        found = self._catalog.database_size(size)
        if found is None:
            raise PermanentProviderError(f"unknown database size {size!r}", code="UnknownSize")
        return int(found.provider.get("connection_limit", _DEFAULT_CONNECTION_LIMIT))

    def names(self, resource_id: uuid.UUID) -> DatabaseNames:
        name = f"{_PREFIX}{resource_id.hex}"
        return DatabaseNames(database=name, username=name)

    async def _read(
        self, conn: psycopg.AsyncConnection[Any], name: str
    ) -> tuple[dict[str, Any], int] | None:
        row = await (
            await conn.execute(
                "SELECT shobj_description(oid, 'pg_database'), datconnlimit"
                " FROM pg_database WHERE datname = %s",
                (name,),
            )
        ).fetchone()
        if row is None:
            return None
        try:
            meta = json.loads(row[0] or "{}")
        except ValueError:
            meta = {}
        return (meta if isinstance(meta, dict) else {}), int(row[1])

    def _observed(
        self, address: ClusterAddress, name: str, meta: dict[str, Any], version: str
    ) -> ObservedDatabase:
        resource_id = meta.get("resource_id")
        project_id = meta.get("project_id")
        return ObservedDatabase(
            provider_id=name,
            region=str(meta.get("region", "local")),
            state=DatabaseState.creating if meta.get("restoring") else DatabaseState.available,
            engine_version=version,
            size=meta.get("size"),
            storage_gb=meta.get("storage_gb"),
            database=name,
            username=name,
            host=address.host,
            port=address.port,
            deletion_protection=bool(meta.get("deletion_protection")),
            resource_id=uuid.UUID(resource_id) if resource_id else None,
            project_id=uuid.UUID(project_id) if project_id else None,
        )

    async def _server_version(self, conn: psycopg.AsyncConnection[Any]) -> str:
        return str(conn.info.server_version // 10000)

    async def _comment(
        self, conn: psycopg.AsyncConnection[Any], name: str, meta: dict[str, Any]
    ) -> None:
        await conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps({**meta, _MARK: True}))
            )
        )

    # -- databases -----------------------------------------------------------------

    async def create_database(self, spec: DatabaseSpec) -> ObservedDatabase:
        name = self.names(spec.resource_id).database
        limit = self._connection_limit(spec.size)
        meta = {
            "resource_id": str(spec.resource_id),
            "project_id": str(spec.project_id),
            "region": spec.region,
            "size": spec.size,
            "storage_gb": spec.storage_gb,
            "deletion_protection": spec.deletion_protection,
            "restoring": spec.restore_from is not None,
        }
        address = await self._address()
        async with self._admin() as conn:
            version = await self._server_version(conn)
            if spec.engine_version != version:
                raise PermanentProviderError(
                    f"this server runs PostgreSQL {version}, not {spec.engine_version}",
                    code="EngineVersionUnavailable",
                )
            if spec.restore_from is not None:
                self._snapshot_file(spec.restore_from)  # ProviderNotFound before any change
            role = sql.Identifier(name)
            if await (
                await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            ).fetchone():
                await conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        role, sql.Literal(scram_verifier(spec.password))
                    )
                )
            else:
                await conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
                        " NOREPLICATION NOBYPASSRLS PASSWORD {}"
                    ).format(role, sql.Literal(scram_verifier(spec.password)))
                )
            existing = await self._read(conn, name)
            if existing is not None and existing[0].get("restoring"):
                # A restore that did not finish (a crash): start it over.
                await conn.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                )
                existing = None
            if existing is None:
                await conn.execute(
                    sql.SQL(
                        "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'"
                        " CONNECTION LIMIT {}"
                    ).format(sql.Identifier(name), role, sql.Literal(limit))
                )
                await conn.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name))
                )
                await self._comment(conn, name, meta)
                if spec.restore_from is not None:
                    await self._restore(address, name, spec.restore_from)
                    meta["restoring"] = False
                    await self._comment(conn, name, meta)
                existing = (meta, limit)
        log.info("local_database_created", provider_id=name, resource_id=str(spec.resource_id))
        return self._observed(address, name, existing[0], version)

    async def find_database(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedDatabase | None:
        try:
            return await self.describe_database(
                region=region, provider_id=self.names(resource_id).database
            )
        except ProviderNotFound:
            return None

    async def describe_database(self, *, region: str, provider_id: str) -> ObservedDatabase:
        address = await self._address()
        async with self._admin() as conn:
            found = await self._read(conn, provider_id)
            version = await self._server_version(conn)
        if found is None or not found[0].get(_MARK):
            raise ProviderNotFound(f"database {provider_id} does not exist", code="DBNotFound")
        return self._observed(address, provider_id, found[0], version)

    async def list_databases(self, *, region: str) -> list[ObservedDatabase]:
        address = await self._address()
        async with self._admin() as conn:
            rows = await (
                await conn.execute(
                    "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
                    " WHERE datname LIKE %s",
                    (f"{_PREFIX}%",),
                )
            ).fetchall()
            version = await self._server_version(conn)
        found = []
        for name, comment in rows:
            with contextlib.suppress(ValueError, TypeError):
                meta = json.loads(comment or "{}")
                if isinstance(meta, dict) and meta.get(_MARK):
                    found.append(self._observed(address, name, meta, version))
        return found

    async def resize_database(
        self, *, region: str, provider_id: str, size: str, storage_gb: int
    ) -> None:
        limit = self._connection_limit(size)
        async with self._admin() as conn:
            found = await self._read(conn, provider_id)
            if found is None:
                raise ProviderNotFound(f"database {provider_id} does not exist", code="DBNotFound")
            await conn.execute(
                sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                    sql.Identifier(provider_id), sql.Literal(limit)
                )
            )
            await self._comment(
                conn, provider_id, {**found[0], "size": size, "storage_gb": storage_gb}
            )

    async def set_password(self, *, region: str, provider_id: str, password: str) -> None:
        async with self._admin() as conn:
            if not await (
                await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (provider_id,))
            ).fetchone():
                raise ProviderNotFound(f"database {provider_id} does not exist", code="DBNotFound")
            await conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(provider_id), sql.Literal(scram_verifier(password))
                )
            )

    async def set_deletion_protection(
        self, *, region: str, provider_id: str, enabled: bool
    ) -> None:
        """Recorded only: Lariba itself refuses to delete a protected database."""
        async with self._admin() as conn:
            found = await self._read(conn, provider_id)
            if found is None:
                raise ProviderNotFound(f"database {provider_id} does not exist", code="DBNotFound")
            await self._comment(conn, provider_id, {**found[0], "deletion_protection": enabled})

    async def delete_database(
        self, *, region: str, provider_id: str, final_snapshot: uuid.UUID | None = None
    ) -> None:
        async with self._admin() as conn:
            found = await self._read(conn, provider_id)
            if found is not None and final_snapshot is not None:
                project = found[0].get("project_id")
                await self.create_snapshot(
                    region=region,
                    database_provider_id=provider_id,
                    resource_id=final_snapshot,
                    project_id=uuid.UUID(project) if project else uuid.UUID(int=0),
                )
            await conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(provider_id)
                )
            )
            await conn.execute(
                sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(provider_id))
            )
        log.info("local_database_deleted", provider_id=provider_id)

    async def metrics(self, *, region: str, provider_id: str) -> DatabaseMetrics:
        async with self._admin() as conn:
            row = await (
                await conn.execute(
                    "SELECT pg_database_size(d.oid),"
                    " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname)"
                    " FROM pg_database d WHERE d.datname = %s",
                    (provider_id,),
                )
            ).fetchone()
        if row is None:
            raise ProviderNotFound(f"database {provider_id} does not exist", code="DBNotFound")
        return DatabaseMetrics(size_bytes=int(row[0]), connections=int(row[1]))

    # -- snapshots -----------------------------------------------------------------

    def _snapshot_id(self, resource_id: uuid.UUID) -> str:
        return f"{_SNAPSHOT_PREFIX}{resource_id.hex}"

    def _snapshot_paths(self, provider_id: str) -> tuple[Path, Path]:
        if not provider_id.startswith(_SNAPSHOT_PREFIX) or "/" in provider_id:
            raise ProviderNotFound(
                f"snapshot {provider_id} does not exist", code="SnapshotNotFound"
            )
        return self._snapshots / f"{provider_id}.dump", self._snapshots / f"{provider_id}.json"

    def _snapshot_file(self, provider_id: str) -> Path:
        dump, record = self._snapshot_paths(provider_id)
        if not record.exists() or not dump.exists():
            raise ProviderNotFound(
                f"snapshot {provider_id} does not exist", code="SnapshotNotFound"
            )
        return dump

    def _snapshot_record(self, provider_id: str) -> ObservedSnapshot:
        dump, record = self._snapshot_paths(provider_id)
        try:
            data = json.loads(record.read_text())
        except FileNotFoundError:
            raise ProviderNotFound(
                f"snapshot {provider_id} does not exist", code="SnapshotNotFound"
            ) from None
        return ObservedSnapshot(
            provider_id=provider_id,
            region=str(data.get("region", "local")),
            state=SnapshotState.available,
            database_provider_id=str(data["database_provider_id"]),
            resource_id=uuid.UUID(data["resource_id"]),
            size_bytes=dump.stat().st_size if dump.exists() else None,
            created_at=datetime.fromisoformat(data["created_at"]),
        )

    async def _tool(self, program: str, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            pg_binary(program),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _out, err = await asyncio.wait_for(process.communicate(), _TOOL_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise TransientProviderError(f"{program} timed out", code="Timeout") from None
        if process.returncode != 0:
            raise PermanentProviderError(
                f"{program} failed: {err.decode(errors='replace').strip()[-500:]}",
                code=f"{program.replace('_', '')}Failed",
            )

    async def _restore(self, address: ClusterAddress, name: str, provider_id: str) -> None:
        await self._tool(
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--role={name}",
            "--dbname",
            make_conninfo(address.admin_url, dbname=name),
            str(self._snapshot_file(provider_id)),
        )

    async def create_snapshot(
        self,
        *,
        region: str,
        database_provider_id: str,
        resource_id: uuid.UUID,
        project_id: uuid.UUID,
    ) -> ObservedSnapshot:
        provider_id = self._snapshot_id(resource_id)
        dump, record = self._snapshot_paths(provider_id)
        if record.exists():
            return self._snapshot_record(provider_id)
        address = await self._address()
        async with self._admin() as conn:
            if await self._read(conn, database_provider_id) is None:
                raise ProviderNotFound(
                    f"database {database_provider_id} does not exist", code="DBNotFound"
                )
        self._snapshots.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = dump.with_suffix(".partial")
        await self._tool(
            "pg_dump",
            "--format=custom",
            "--file",
            str(partial),
            "--dbname",
            make_conninfo(address.admin_url, dbname=database_provider_id),
        )
        os.replace(partial, dump)
        # The record is written last: a snapshot without one never finished.
        staged = record.with_suffix(".json.partial")
        staged.write_text(
            json.dumps(
                {
                    "resource_id": str(resource_id),
                    "project_id": str(project_id),
                    "region": region,
                    "database_provider_id": database_provider_id,
                    "created_at": datetime.now(UTC).isoformat(),
                }
            )
        )
        os.replace(staged, record)
        log.info("local_snapshot_created", provider_id=provider_id, database=database_provider_id)
        return self._snapshot_record(provider_id)

    async def find_snapshot(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedSnapshot | None:
        try:
            return self._snapshot_record(self._snapshot_id(resource_id))
        except ProviderNotFound:
            return None

    async def describe_snapshot(self, *, region: str, provider_id: str) -> ObservedSnapshot:
        return self._snapshot_record(provider_id)

    async def delete_snapshot(self, *, region: str, provider_id: str) -> None:
        dump, record = self._snapshot_paths(provider_id)
        record.unlink(missing_ok=True)
        dump.unlink(missing_ok=True)


def embedded_cluster(server: DatabaseServer) -> Callable[[], ClusterAddress]:
    return server.ensure_running
