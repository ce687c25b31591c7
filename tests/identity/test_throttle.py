"""Failed-login throttling: per account, shared by every API replica through PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.settings import Settings
from lariba.identity.models import AuditEvent, LoginThrottle
from tests.fixtures.app import running_client
from tests.fixtures.identity import TestUser, log_in

WRONG = "definitely-not-the-password"


async def test_throttle_holds_across_two_api_instances(
    client: httpx.AsyncClient,
    alice: TestUser,
    settings: Settings,
    test_database_url: str,
    db: AsyncSession,
) -> None:
    """Failures on two replicas (separate apps and connection pools, one database) add
    up, and the lock-out is enforced by both — even against the right password."""
    limit = settings.login_max_failures
    async with (
        running_client(settings, test_database_url, client_ip="127.0.0.11") as first,
        running_client(settings, test_database_url, client_ip="127.0.0.12") as second,
    ):
        for attempt in range(limit):
            replica = first if attempt % 2 == 0 else second
            assert (await log_in(replica, alice.email, WRONG)).status_code == 401
        for replica in (first, second):
            throttled = await log_in(replica, alice.email, alice.password)
            assert throttled.status_code == 429, throttled.text
            assert throttled.json()["code"] == "login_throttled"
            assert 1 <= int(throttled.headers["retry-after"]) <= settings.login_lockout_seconds
            assert throttled.json()["retry_after"] == int(throttled.headers["retry-after"])
    row = await db.get(LoginThrottle, f"account:{alice.email}")
    assert row is not None and row.failures == limit and row.locked_until is not None
    denied = (await db.scalars(select(AuditEvent).where(AuditEvent.outcome == "denied"))).all()
    assert len(denied) == 2
    assert all(e.details == {"reason": "throttled"} for e in denied)


async def test_unknown_account_is_throttled_like_a_real_one(
    client: httpx.AsyncClient, alice: TestUser, settings: Settings
) -> None:
    for email in (alice.email, "ghost@example.com"):
        for _ in range(settings.login_max_failures):
            await log_in(client, email, WRONG)
    real = await log_in(client, alice.email, WRONG)
    ghost = await log_in(client, "ghost@example.com", WRONG)
    assert real.status_code == ghost.status_code == 429
    assert real.json()["detail"] == ghost.json()["detail"]


async def test_lockout_ends_and_success_clears_the_count(
    client: httpx.AsyncClient, alice: TestUser, settings: Settings, db: AsyncSession
) -> None:
    for _ in range(settings.login_max_failures):
        await log_in(client, alice.email, WRONG)
    assert (await log_in(client, alice.email, alice.password)).status_code == 429
    await db.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == f"account:{alice.email}")
        .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    assert (await log_in(client, alice.email, alice.password)).status_code == 200
    db.expire_all()
    assert await db.get(LoginThrottle, f"account:{alice.email}") is None


async def test_lockout_doubles_with_further_failures(
    client: httpx.AsyncClient, alice: TestUser, settings: Settings, db: AsyncSession
) -> None:
    for _ in range(settings.login_max_failures):
        await log_in(client, alice.email, WRONG)
    first = await db.get(LoginThrottle, f"account:{alice.email}")
    assert first is not None and first.locked_until is not None
    first_lock = first.locked_until - datetime.now(UTC)
    # Let the lock lapse, fail once more: the next lock is twice as long.
    await db.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == f"account:{alice.email}")
        .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    await log_in(client, alice.email, WRONG)
    db.expire_all()
    second = await db.get(LoginThrottle, f"account:{alice.email}")
    assert second is not None and second.locked_until is not None
    second_lock = second.locked_until - datetime.now(UTC)
    assert second_lock > first_lock * 1.8


async def test_failures_from_many_addresses_still_lock_the_account(
    alice: TestUser, settings: Settings, test_database_url: str
) -> None:
    """Per-account, not only per-IP: an attacker rotating addresses is still stopped."""
    for n in range(settings.login_max_failures):
        async with running_client(settings, test_database_url, client_ip=f"127.0.1.{n + 1}") as c:
            assert (await log_in(c, alice.email, WRONG)).status_code == 401
    async with running_client(settings, test_database_url, client_ip="127.0.2.7") as c:
        assert (await log_in(c, alice.email, alice.password)).status_code == 429
