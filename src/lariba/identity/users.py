"""Looking users up and creating them; shared by sign-up, login, invitations and bootstrap."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import Conflict
from lariba.identity.models import User


def normalise_email(email: str) -> str:
    """E-mail addresses are compared case-insensitively and without surrounding space."""
    return email.strip().lower()


async def user_by_email(session: AsyncSession, email: str, *, lock: bool = False) -> User | None:
    stmt = select(User).where(func.lower(User.email) == normalise_email(email))
    if lock:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    display_name: str | None = None,
    is_platform_admin: bool = False,
) -> User:
    user = User(
        email=normalise_email(email),
        password_hash=password_hash,
        display_name=display_name,
        is_platform_admin=is_platform_admin,
    )
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("An account with this e-mail already exists.", code="email_taken") from exc
    await session.refresh(user)
    return user
