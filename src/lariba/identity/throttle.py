"""Failed-login throttling per account and per client address.

Counters live in PostgreSQL, so every API replica sees the same state; rows are locked
while updated, so concurrent failures on two replicas are both counted.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.errors import RateLimited
from lariba.core.settings import Settings
from lariba.identity.models import LoginThrottle


def throttle_keys(email: str, client_ip: str | None) -> list[str]:
    keys = [f"account:{email}"]
    if client_ip:
        keys.append(f"ip:{client_ip}")
    return keys


async def ensure_not_throttled(session: AsyncSession, keys: list[str]) -> None:
    """Raises 429 with Retry-After while any of the keys is locked out."""
    now = datetime.now(UTC)
    locked = await session.scalar(
        select(LoginThrottle.locked_until)
        .where(LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now)
        .order_by(LoginThrottle.locked_until.desc())
        .limit(1)
    )
    if locked is not None:
        raise RateLimited(
            "Too many failed logins. Wait before trying again.",
            retry_after=math.ceil((locked - now).total_seconds()),
            code="login_throttled",
        )


async def record_login_failure(
    sessionmaker: async_sessionmaker[AsyncSession], *, keys: list[str], settings: Settings
) -> None:
    """Counts a failed login against every key, in its own transaction (the request's is
    rolled back when login fails). Past the limit, a key is locked out for a period that
    doubles with each further failure, up to the configured maximum."""
    now = datetime.now(UTC)
    window = timedelta(seconds=settings.login_failure_window_seconds)
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(LoginThrottle)
            .values([{"key": key, "failures": 0, "window_started_at": now} for key in keys])
            .on_conflict_do_nothing()
        )
        rows = (
            await session.scalars(
                select(LoginThrottle)
                .where(LoginThrottle.key.in_(keys))
                .order_by(LoginThrottle.key)
                .with_for_update()
            )
        ).all()
        for row in rows:
            if row.window_started_at < now - window:
                row.failures = 0
                row.window_started_at = now
            row.failures += 1
            limit = (
                settings.login_ip_max_failures
                if row.key.startswith("ip:")
                else settings.login_max_failures
            )
            if row.failures >= limit:
                seconds = min(
                    settings.login_lockout_seconds * 2 ** min(row.failures - limit, 16),
                    settings.login_lockout_max_seconds,
                )
                row.locked_until = now + timedelta(seconds=seconds)


async def clear_account_failures(session: AsyncSession, email: str) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == f"account:{email}"))
