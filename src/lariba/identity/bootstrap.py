"""First-run setup: a signing key and the first platform admin."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity import audit
from lariba.identity.audit import SYSTEM
from lariba.identity.models import User
from lariba.identity.passwords import check_password_policy
from lariba.identity.runtime import IdentityRuntime
from lariba.identity.tokens import ensure_signing_key
from lariba.identity.users import create_user, user_by_email

# API replicas may start together on a fresh database: one sets up, the others wait on
# this lock (held until the transaction ends) and then find everything there.
_BOOTSTRAP_LOCK_ID = 7_240_413


async def bootstrap(
    session: AsyncSession, runtime: IdentityRuntime
) -> tuple[str, str | None] | None:
    """Ensures a signing key and a platform admin exist.

    Returns (e-mail, generated password or None) when an admin was created now, so the
    caller can show the password once; None when there already was one.
    """
    await session.execute(select(func.pg_advisory_xact_lock(_BOOTSTRAP_LOCK_ID)))
    await ensure_signing_key(session, box=runtime.box)
    has_admin = await session.scalar(select(User.id).where(User.is_platform_admin).limit(1))
    if has_admin is not None:
        return None
    settings = runtime.settings
    email = settings.admin_email
    existing = await user_by_email(session, email, lock=True)
    if existing is not None:
        existing.is_platform_admin = True
        created = existing
        generated = None
    else:
        configured = settings.admin_password.get_secret_value() if settings.admin_password else None
        if configured is not None:
            check_password_policy(configured, settings=settings, field="LARIBA_ADMIN_PASSWORD")
        password = configured or secrets.token_urlsafe(18)
        created = await create_user(
            session,
            email=email,
            password_hash=runtime.passwords.hash(password),
            display_name="Platform admin",
            is_platform_admin=True,
        )
        generated = None if configured else password
    await audit.record(
        session,
        ctx=None,
        actor=SYSTEM,
        action="admin.bootstrap",
        target_type="user",
        target_id=created.id,
    )
    return created.email, generated
