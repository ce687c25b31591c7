"""Use cases of invitations: inviting someone to a project by e-mail, listing and revoking
pending invitations, and accepting one with its secret token.

The token is shown once (or e-mailed); only its SHA-256 is stored. It has 256 bits of
entropy, so a slow hash would add nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import smtplib
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.email import deliver
from lariba.core.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from lariba.core.pagination import Page, PageRequest, fetch_page
from lariba.core.settings import Settings
from lariba.identity import audit
from lariba.identity.audit import RequestContext
from lariba.identity.authn import Principal
from lariba.identity.authz import ProjectAccess, load_project
from lariba.identity.models import Invitation, Membership, Role, User
from lariba.identity.projects.schemas import InvitationCreated, InvitationOut, ProjectOut
from lariba.identity.runtime import IdentityRuntime
from lariba.identity.users import normalise_email

log = structlog.get_logger(__name__)


def hash_invitation_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def accept_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/v1/invitations/{token}/accept"


def _pending(now: datetime) -> Any:
    return (
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )


async def _is_member(session: AsyncSession, *, project_id: uuid.UUID, email: str) -> bool:
    stmt = (
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id, func.lower(User.email) == email)
    )
    return (await session.scalar(stmt)) is not None


async def create_invitation(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    access: ProjectAccess,
    email: str,
    role: Role,
) -> InvitationCreated:
    """Invites ``email``; a pending invitation of the same address is replaced. The token
    is e-mailed when SMTP is configured, else returned (once) for the caller to pass on."""
    settings = runtime.settings
    principal = access.principal
    project = access.project
    email = normalise_email(email)
    # Serialises invitations of one address to one project, so two concurrent re-invites
    # leave one pending; a transaction lock, not a row lock, so nothing else waits on it.
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"{project.id}:{email}", 0)))
    )
    if await _is_member(session, project_id=project.id, email=email):
        raise Conflict(f"{email} is already a member of this project.", code="already_member")
    now = datetime.now(UTC)
    replaced = (
        await session.scalars(
            update(Invitation)
            .where(Invitation.project_id == project.id, Invitation.email == email, *_pending(now))
            .values(revoked_at=now)
            .returning(Invitation.id)
        )
    ).all()
    for old_id in replaced:
        await audit.record(
            session,
            ctx=ctx,
            actor=principal.actor,
            action="invitation.revoke",
            target_type="invitation",
            target_id=old_id,
            project_id=project.id,
            details={"email": email, "reason": "reinvited"},
        )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        id=uuid.uuid4(),
        project_id=project.id,
        email=email,
        role=role,
        token_hash=hash_invitation_token(token),
        invited_by=principal.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.invitation_ttl_seconds),
    )
    session.add(invitation)
    await session.flush()
    email_sent = settings.smtp_host is not None
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="invitation.create",
        target_type="invitation",
        target_id=invitation.id,
        project_id=project.id,
        details={"email": email, "role": role, "emailed": email_sent},
    )
    out = InvitationOut.model_validate(invitation)
    if email_sent:
        # Sent before the transaction commits: if delivery fails the invitation is rolled
        # back rather than left pending with a token nobody received.
        await _send_invitation_email(
            settings,
            to=email,
            project_name=project.name,
            inviter=principal.email,
            role=role,
            token=token,
            expires_at=invitation.expires_at,
        )
        return InvitationCreated(**out.model_dump(), email_sent=True)
    return InvitationCreated(
        **out.model_dump(),
        email_sent=False,
        token=token,
        accept_url=accept_url(settings, token),
    )


def _invitation_message(
    settings: Settings,
    *,
    to: str,
    project_name: str,
    inviter: str,
    role: Role,
    token: str,
    expires_at: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"You are invited to the project {project_name} on Lariba Cloud"
    message["From"] = settings.smtp_from
    message["To"] = to
    message.set_content(
        f"{inviter} invited you to join the project {project_name} as {role}.\n\n"
        f"To accept, open this page and sign in as {to} (or create that account):\n"
        f"{settings.base_url}/invitations/{token}\n\n"
        f"With the API, logged in as {to}: POST {accept_url(settings, token)}\n\n"
        f"Invitation token: {token}\n\n"
        f"The invitation expires at {expires_at.isoformat()}. If you did not expect it, "
        "ignore this e-mail.\n"
    )
    return message


async def _send_invitation_email(
    settings: Settings,
    *,
    to: str,
    project_name: str,
    inviter: str,
    role: Role,
    token: str,
    expires_at: datetime,
) -> None:
    message = _invitation_message(
        settings,
        to=to,
        project_name=project_name,
        inviter=inviter,
        role=role,
        token=token,
        expires_at=expires_at,
    )
    try:
        await asyncio.to_thread(deliver, settings, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("invitation_email_failed", error_type=type(exc).__name__)
        raise ServiceUnavailable(
            "The invitation e-mail could not be sent, so no invitation was created; retry shortly.",
            code="email_delivery_failed",
        ) from exc


async def list_pending(
    session: AsyncSession, *, access: ProjectAccess, page: PageRequest
) -> Page[InvitationOut]:
    stmt = select(Invitation).where(
        Invitation.project_id == access.project.id, *_pending(datetime.now(UTC))
    )
    rows, next_cursor = await fetch_page(
        session, stmt, page=page, created_at=Invitation.created_at, ident=Invitation.id
    )
    return Page(
        items=[InvitationOut.model_validate(row.Invitation) for row in rows],
        next_cursor=next_cursor,
    )


async def revoke_invitation(
    session: AsyncSession,
    *,
    ctx: RequestContext,
    access: ProjectAccess,
    invitation_id: uuid.UUID,
) -> None:
    now = datetime.now(UTC)
    revoked = await session.scalar(
        update(Invitation)
        .where(
            Invitation.id == invitation_id,
            Invitation.project_id == access.project.id,
            *_pending(now),
        )
        .values(revoked_at=now)
        .returning(Invitation.email)
    )
    if revoked is None:
        raise NotFound(
            f"No pending invitation {invitation_id} in this project.",
            code="invitation_not_found",
        )
    await audit.record(
        session,
        ctx=ctx,
        actor=access.principal.actor,
        action="invitation.revoke",
        target_type="invitation",
        target_id=invitation_id,
        project_id=access.project.id,
        details={"email": revoked},
    )


async def accept_invitation(
    session: AsyncSession,
    runtime: IdentityRuntime,
    *,
    ctx: RequestContext,
    principal: Principal,
    token: str,
) -> ProjectOut:
    """Makes the caller a member with the invited role. The invitation row is locked, so of
    two concurrent accepts one wins and the other finds it used."""
    now = datetime.now(UTC)
    invitation = await session.scalar(
        select(Invitation)
        .where(Invitation.token_hash == hash_invitation_token(token), *_pending(now))
        .with_for_update()
    )
    if invitation is None:
        raise NotFound(
            "This invitation does not exist, has expired, was revoked or was already used; "
            "ask for a new one.",
            code="invitation_not_found",
        )
    if normalise_email(principal.email) != invitation.email:
        await audit.record_now(
            runtime.sessionmaker,
            ctx=ctx,
            actor=principal.actor,
            action="invitation.accept",
            outcome="denied",
            target_type="invitation",
            target_id=invitation.id,
            project_id=invitation.project_id,
            details={"reason": "email_mismatch"},
        )
        raise Forbidden(
            "This invitation was sent to another e-mail address; log in as that account "
            "to accept it.",
            code="invitation_email_mismatch",
        )
    existing = await session.get(Membership, (invitation.project_id, principal.user_id))
    if existing is not None:
        raise Conflict("You are already a member of this project.", code="already_member")
    session.add(
        Membership(
            project_id=invitation.project_id, user_id=principal.user_id, role=invitation.role
        )
    )
    invitation.accepted_at = now
    invitation.accepted_by = principal.user_id
    await session.flush()
    await audit.record(
        session,
        ctx=ctx,
        actor=principal.actor,
        action="invitation.accept",
        target_type="invitation",
        target_id=invitation.id,
        project_id=invitation.project_id,
        details={"role": invitation.role, "invited_by": str(invitation.invited_by)},
    )
    access = await load_project(session, principal, invitation.project_id)
    return ProjectOut.of(access.project, access.role)
