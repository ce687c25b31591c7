"""Unhandled API errors (500s), recorded with the request id their caller was given, for
platform admins; purged after ``server_error_retention_days``."""

from __future__ import annotations

import asyncio
import re
import traceback
from datetime import timedelta

import structlog
from fastapi import Request
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.pagination import Page, SequencePageRequest, fetch_page_newest_first
from lariba.core.settings import Settings
from lariba.monitoring.audit.schemas import ServerErrorOut
from lariba.monitoring.models import ServerError

log = structlog.get_logger(__name__)

MESSAGE_LIMIT = 2_000
TRACEBACK_LIMIT = 16_000
# The caller waits for the record before its 500 is sent: a database that does not answer
# must not hold the answer long.
RECORD_TIMEOUT_SECONDS = 2.0
PURGE_BATCH = 10_000

_MASK = "[redacted]"
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # user:password@ in URLs (database, SMTP, AWS endpoints).
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), rf"\1{_MASK}@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {_MASK}"),
    (re.compile(r"\blrb_[A-Za-z0-9_-]+"), f"lrb_{_MASK}"),
    # password=..., "token": "...", secret_key: ... in messages and reprs.
    (
        re.compile(
            r"(?i)\b([a-z_]*(?:password|passwd|secret|token|api_key|authorization)[a-z_]*"
            r"['\"]?\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s,;)}\]]+)"
        ),
        rf"\1{_MASK}",
    ),
]


def _known_secrets(settings: Settings) -> list[str]:
    values = [
        secret.get_secret_value()
        for secret in (
            settings.secret_key,
            settings.secret_key_previous,
            settings.admin_password,
            settings.smtp_password,
        )
        if secret is not None
    ]
    return [value for value in values if len(value) >= 8]


def redact(text: str, *, secrets: list[str]) -> str:
    """``text`` with credentials masked: the deployment's own secrets wherever they
    appear, and anything shaped like a password, token, API key or URL credential."""
    for secret in secrets:
        text = text.replace(secret, _MASK)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(text: str, limit: int) -> str:
    # The innermost frames and the error itself are at the end of a traceback.
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def server_error_row(request: Request, exc: Exception, *, settings: Settings) -> ServerError:
    """The record of ``exc``: the request's id, method and route template only; never its
    path values, query, headers or body."""
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    secrets = _known_secrets(settings)
    return ServerError(
        request_id=getattr(request.state, "request_id", None),
        method=request.method[:16],
        route=template[:512] if isinstance(template, str) else None,
        error_type=_head(f"{type(exc).__module__}.{type(exc).__qualname__}", 256),
        message=_head(redact(str(exc), secrets=secrets), MESSAGE_LIMIT),
        traceback=_tail(
            redact("".join(traceback.format_exception(exc)), secrets=secrets), TRACEBACK_LIMIT
        ),
    )


async def record_server_error(request: Request, exc: Exception) -> None:
    """Stores the error in its own short transaction (the request's is rolled back).
    Never raises: when the database is away the error is only logged."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        row = server_error_row(request, exc, settings=request.app.state.settings)
        async with asyncio.timeout(RECORD_TIMEOUT_SECONDS), sessionmaker.begin() as session:
            session.add(row)
    except Exception as record_exc:
        log.warning("server_error_not_recorded", error_type=type(record_exc).__name__)


async def list_server_errors(
    session: AsyncSession, *, page: SequencePageRequest, request_id: str | None
) -> Page[ServerErrorOut]:
    stmt = select(ServerError)
    if request_id is not None:
        stmt = stmt.where(ServerError.request_id == request_id)
    rows, next_cursor = await fetch_page_newest_first(
        session, stmt, page=page, ident=ServerError.id
    )
    return Page(
        items=[ServerErrorOut.model_validate(row.ServerError) for row in rows],
        next_cursor=next_cursor,
    )


async def purge_server_errors(
    session: AsyncSession, *, older_than_days: int, limit: int = PURGE_BATCH
) -> int:
    """Deletes up to ``limit`` errors older than ``older_than_days``; the caller commits."""
    expired = (
        select(ServerError.id)
        .where(ServerError.occurred_at < func.now() - timedelta(days=older_than_days))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(delete(ServerError).where(ServerError.id.in_(expired)))
    return int(result.rowcount)  # type: ignore[attr-defined]
