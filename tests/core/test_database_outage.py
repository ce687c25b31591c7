"""When PostgreSQL goes away the API answers 503 problem+json with Retry-After, and it
recovers by itself when the database is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lariba.app import create_app
from lariba.core.embedded import EmbeddedPostgres
from tests.fixtures.app import BASE_URL, running_client
from tests.fixtures.database import make_settings, prepare_database
from tests.fixtures.identity import sign_up


async def test_outage_is_503_and_recovers_without_restart(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg"
    server = EmbeddedPostgres.start(pgdata)
    url = server.ensure_database()
    await asyncio.to_thread(prepare_database, url, tmp_path)
    settings = make_settings(tmp_path)
    try:
        async with running_client(settings, url) as client:
            user = await sign_up(client)
            assert (await client.get("/v1/me", headers=user.headers)).status_code == 200

            await asyncio.to_thread(server.stop)
            for method, path in [("GET", "/v1/me"), ("POST", "/v1/auth/token")]:
                response = await client.request(
                    method,
                    path,
                    headers=user.headers,
                    data={"username": user.email, "password": user.password}
                    if method == "POST"
                    else None,
                )
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["code"] == "database_unavailable"
                assert int(response.headers["retry-after"]) > 0
                assert "Traceback" not in response.text
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["code"] == "database_unavailable"
            assert (await client.get("/healthz")).status_code == 200

            server = await asyncio.to_thread(EmbeddedPostgres.start, pgdata)
            me = await client.get("/v1/me", headers=user.headers)
            assert me.status_code == 200, me.text
            assert me.json()["email"] == user.email
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await asyncio.to_thread(server.stop)


def test_api_starts_while_the_database_is_down(tmp_path: Path) -> None:
    """An API replica booting during an outage starts and answers 503, not a crash."""
    settings = make_settings(tmp_path)

    async def run() -> None:
        url = f"postgresql://postgres@/lariba?host={tmp_path}"
        async with running_client(settings, url) as client:
            response = await client.post(
                "/v1/auth/token", data={"username": "a@example.com", "password": "whatever-123"}
            )
            assert response.status_code == 503
            assert response.json()["code"] == "database_unavailable"
            ready = await client.get("/readyz")
            assert ready.status_code == 503

    asyncio.run(run())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secret_key": None, "database_url": "postgresql://db/lariba"}, "LARIBA_SECRET_KEY"),
        ({"secret_key": "changeme", "database_url": "postgresql://db/lariba"}, "LARIBA_SECRET_KEY"),
        ({"secret_key": "k" * 40, "database_url": None}, "LARIBA_DATABASE_URL"),
        (
            {
                "secret_key": "k" * 40,
                "database_url": "postgresql://db/l",
                "admin_password": "password",
            },
            "LARIBA_ADMIN_PASSWORD",
        ),
    ],
)
def test_production_refuses_default_or_missing_secrets(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_settings(tmp_path, env="production", **overrides)


def test_production_starts_with_real_secrets(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, env="production", secret_key="k" * 40, database_url="postgresql://db/lariba"
    )
    assert settings.master_key == b"k" * 40


async def test_every_pooled_connection_busy_is_503_server_busy_not_an_outage(
    tmp_path: Path, test_database_url: str
) -> None:
    """When every connection the process may open is held by other requests, the answer
    says the server is busy (PostgreSQL is fine), with a short Retry-After; once one is
    free again, requests are answered."""
    settings = make_settings(tmp_path, db_pool_size=1, db_connect_timeout_seconds=1)
    app = create_app(settings, database_url=test_database_url, run_worker=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            user = await sign_up(client)
            engine: AsyncEngine = app.state.engine
            # pool_size 1 + max_overflow 1: two connections, both taken.
            async with engine.connect() as first, engine.connect() as second:
                await first.execute(text("SELECT 1"))
                await second.execute(text("SELECT 1"))
                busy = await client.get("/v1/projects", headers=user.headers)
            assert busy.status_code == 503, busy.text
            assert busy.json()["code"] == "server_busy"
            assert busy.headers["retry-after"] == "1"
            assert busy.headers["content-type"] == "application/problem+json"

            free = await client.get("/v1/projects", headers=user.headers)
            assert free.status_code == 200, free.text
            assert free.json()["items"] == []
