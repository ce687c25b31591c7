"""`lariba migrate` as the container's one-shot migration service runs it: a real process,
production settings, an empty database brought to the latest revision."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from psycopg import sql

from lariba.core.migrate import alembic_config
from tests.fixtures.database import TEST_SECRET_KEY, _admin_execute, _libpq_url, database_url


@pytest.fixture
def empty_database_url(postgres_server_url: str) -> Iterator[str]:
    """A database with no tables at all, as a new deployment's PostgreSQL has."""
    name = f"lariba_empty_{uuid.uuid4().hex[:12]}"
    _admin_execute(postgres_server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(postgres_server_url, name)
    finally:
        _admin_execute(
            postgres_server_url,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        )


def _migrate(url: str, data_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LARIBA_")},
        "LARIBA_ENV": "production",
        "LARIBA_DATABASE_URL": url,
        "LARIBA_SECRET_KEY": TEST_SECRET_KEY,
        "LARIBA_DATA_DIR": str(data_dir),
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "lariba.cli.main", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _revision(url: str) -> str | None:
    with psycopg.connect(_libpq_url(url)) as conn:
        table = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
        if table is None or table[0] is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])


def _tables(url: str) -> set[str]:
    with psycopg.connect(_libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {str(name) for (name,) in rows}


def test_migrate_brings_an_empty_database_to_head_and_exits(
    empty_database_url: str, tmp_path: Path
) -> None:
    head = ScriptDirectory.from_config(alembic_config(empty_database_url)).get_current_head()
    assert _revision(empty_database_url) is None

    first = _migrate(empty_database_url, tmp_path / "data")

    assert first.returncode == 0, first.stderr
    assert "Database is up to date." in first.stdout
    assert _revision(empty_database_url) == head
    tables = _tables(empty_database_url)
    assert {"users", "projects", "signing_keys", "procrastinate_jobs"} <= tables
    # Migrations only: no admin, no signing key (that is `lariba serve`'s first start), and
    # nothing written to the data directory, which the migrate container does not mount.
    with psycopg.connect(_libpq_url(empty_database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM signing_keys").fetchone() == (0,)
    assert not (tmp_path / "data").exists()

    # Run again, as every `docker compose up` does: nothing to do, still success.
    again = _migrate(empty_database_url, tmp_path / "data")
    assert again.returncode == 0, again.stderr
    assert _revision(empty_database_url) == head
    assert _tables(empty_database_url) == tables


def test_migrate_in_production_refuses_a_missing_secret_key(
    empty_database_url: str, tmp_path: Path
) -> None:
    result = _migrate(empty_database_url, tmp_path / "data", LARIBA_SECRET_KEY="")

    assert result.returncode == 2
    assert "LARIBA_SECRET_KEY must be set" in result.stderr
    assert _revision(empty_database_url) is None
    assert _tables(empty_database_url) == set()
