"""Unhandled errors become a 500 with a request id, are recorded (never with a secret)
for platform admins, and are purged after their retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.app import create_app
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.settings import Settings
from lariba.identity.models import User
from lariba.monitoring.audit.server_errors import purge_server_errors
from lariba.monitoring.models import ServerError
from tests.fixtures.app import BASE_URL
from tests.fixtures.identity import TestUser, sign_up

SECRET_URL = "postgresql://lariba:hunter2-db-password@127.0.0.1:5432/lariba"


class WidgetJammed(RuntimeError):
    pass


def _with_failing_route(app: FastAPI) -> FastAPI:
    """A route that fails the way a bug would, with secrets in its message."""

    @app.get("/v1/test/widgets/{widget_id}")
    async def jam(widget_id: str) -> None:
        raise WidgetJammed(f"widget {widget_id} jammed; dsn={SECRET_URL} password=opensesame")

    return app


@asynccontextmanager
async def failing_app(
    settings: Settings, database_url: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = _with_failing_route(create_app(settings, database_url=database_url))
    async with LifespanManager(app):
        # The server re-raises after sending the 500; a real client only sees the 500.
        transport = httpx.ASGITransport(
            app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield app, client


async def test_a_500_is_recorded_with_its_request_id_and_shown_to_admins(
    settings: Settings, test_database_url: str, db: AsyncSession
) -> None:
    async with failing_app(settings, test_database_url) as (_app, client):
        alice = await sign_up(client, email="alice@example.com")
        response = await client.get(
            "/v1/test/widgets/w-42",
            params={"token": "query-secret-value"},
            headers={**alice.headers, "X-Request-ID": "req-boom-0001"},
        )
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["code"] == "internal_error"
        assert body["request_id"] == "req-boom-0001"
        assert "jammed" not in response.text

        row = (
            await db.scalars(select(ServerError).where(ServerError.request_id == "req-boom-0001"))
        ).one()
        assert row.method == "GET"
        assert row.route == "/v1/test/widgets/{widget_id}"
        assert row.error_type == f"{__name__}.WidgetJammed"
        assert row.message.startswith("widget w-42 jammed")
        assert "WidgetJammed" in row.traceback
        assert "in jam" in row.traceback
        assert datetime.now(UTC) - row.occurred_at < timedelta(minutes=1)
        stored = " ".join((row.message, row.traceback, row.route or ""))
        for secret in (
            "hunter2-db-password",
            "opensesame",
            "query-secret-value",
            alice.access_token,
        ):
            assert secret not in stored
        assert "[redacted]" in row.message

        # Platform admins find it by the id the caller quotes; nobody else sees it.
        refused = await client.get("/v1/admin/errors", headers=alice.headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "platform_admin_required"
        root = await _platform_admin(client, db)
        found = await client.get(
            "/v1/admin/errors", params={"request_id": "req-boom-0001"}, headers=root.headers
        )
        assert found.status_code == 200, found.text
        (item,) = found.json()["items"]
        assert item["id"] == row.id
        assert item["route"] == "/v1/test/widgets/{widget_id}"
        assert item["error_type"] == row.error_type
        assert item["message"] == row.message
        assert item["traceback"] == row.traceback
        none = await client.get(
            "/v1/admin/errors", params={"request_id": "req-nothing-01"}, headers=root.headers
        )
        assert none.json() == {"items": [], "next_cursor": None}


async def _platform_admin(client: httpx.AsyncClient, db: AsyncSession) -> TestUser:
    root = await sign_up(client, email="root@example.com")
    await db.execute(update(User).where(User.id == root.id).values(is_platform_admin=True))
    await db.commit()
    return root


async def test_errors_are_listed_newest_first_in_pages(
    settings: Settings, test_database_url: str, db: AsyncSession
) -> None:
    async with failing_app(settings, test_database_url) as (_app, client):
        for n in range(5):
            response = await client.get(
                f"/v1/test/widgets/{n}", headers={"X-Request-ID": f"req-page-{n:04d}"}
            )
            assert response.status_code == 500
        root = await _platform_admin(client, db)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (
                await client.get("/v1/admin/errors", params=params, headers=root.headers)
            ).json()
            seen += [item["request_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert seen == [f"req-page-{n:04d}" for n in reversed(range(5))]


async def test_the_500_is_answered_when_the_database_is_away(
    settings: Settings, test_database_url: str, db: AsyncSession
) -> None:
    async with failing_app(settings, test_database_url) as (app, client):
        # Records go to a port nobody listens on (loopback): the recording fails.
        away = create_engine(
            settings, "postgresql://lariba:x@127.0.0.1:1/lariba", pool_size=1, max_overflow=0
        )
        app.state.sessionmaker = create_sessionmaker(away)
        try:
            response = await client.get(
                "/v1/test/widgets/w-1", headers={"X-Request-ID": "req-away-0001"}
            )
        finally:
            await away.dispose()
        assert response.status_code == 500
        assert response.json()["code"] == "internal_error"
        assert response.json()["request_id"] == "req-away-0001"
    assert await db.scalar(select(func.count()).select_from(ServerError)) == 0


async def test_old_errors_are_purged_by_the_periodic_job(
    app: FastAPI, settings: Settings, db: AsyncSession
) -> None:
    now = datetime.now(UTC)
    for request_id, age in (("req-old-0001", 31), ("req-old-0002", 45), ("req-new-0001", 29)):
        db.add(
            ServerError(
                occurred_at=now - timedelta(days=age),
                request_id=request_id,
                method="GET",
                route="/v1/x",
                error_type="builtins.RuntimeError",
                message="x",
                traceback="x",
            )
        )
    await db.commit()
    assert settings.server_error_retention_days == 30

    task = app.state.jobs.app.tasks["purge_server_errors"]
    assert await task(timestamp=0) == 2
    left = (await db.scalars(select(ServerError.request_id))).all()
    assert left == ["req-new-0001"]
    assert await purge_server_errors(db, older_than_days=1) == 1
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(ServerError)) == 0
    periodic = app.state.jobs.app.periodic_registry.periodic_tasks
    assert ("purge_server_errors", "purge-server-errors") in periodic
