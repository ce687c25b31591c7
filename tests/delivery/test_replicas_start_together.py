"""API replicas started at the same moment on a fresh database: each sets itself up, and
exactly one signing key and one platform admin come of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.jobs import libpq_url
from lariba.identity.bootstrap import bootstrap
from lariba.identity.runtime import IdentityRuntime
from tests.fixtures.database import make_settings

REPLICAS = 4


@pytest.mark.parametrize("signing_key", ["none", "made beforehand"])
async def test_replicas_bootstrapping_together_all_start_and_make_one_admin(
    tmp_path: Path, test_database_url: str, signing_key: str
) -> None:
    settings = make_settings(tmp_path)
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as connection:
        # No admin yet (the test database never has one); with or without a signing key
        # (``lariba keys rotate`` may have run first).
        if signing_key == "none":
            connection.execute("DELETE FROM signing_keys")
        before = connection.execute("SELECT kid FROM signing_keys").fetchall()

    async def start_replica() -> tuple[str, str | None] | None:
        """What ``lariba serve`` does before it listens, on its own engine."""
        engine = create_engine(settings, test_database_url, pool_size=1, max_overflow=0)
        runtime = IdentityRuntime.create(settings, create_sessionmaker(engine))
        try:
            async with runtime.sessionmaker.begin() as session:
                return await bootstrap(session, runtime)
        finally:
            await engine.dispose()

    outcomes = await asyncio.gather(*(start_replica() for _ in range(REPLICAS)))

    created = [outcome for outcome in outcomes if outcome is not None]
    assert len(created) == 1, outcomes
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as connection:
        admins = connection.execute("SELECT email FROM users WHERE is_platform_admin").fetchall()
        keys = connection.execute("SELECT kid, status FROM signing_keys").fetchall()
    assert admins == [(settings.admin_email,)]
    assert len(keys) == 1, keys
    [(kid, status)] = keys
    assert status == "active"
    assert before in ([], [(kid,)])
