"""``Idempotency-Key`` on POST: a retried request gets the first one's response instead of
running twice; the response is stored in the transaction of the change it reports."""

from __future__ import annotations

import hashlib
import inspect
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import procrastinate
from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import CHAR, String, Text, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lariba.core.db import Base
from lariba.core.errors import Unauthorized, problem_response
from lariba.core.jobs import TaskRegistrar
from lariba.core.logging import redact_path
from lariba.core.secrets import SecretBox
from lariba.identity.api_keys.secret import hash_api_key, looks_like_api_key
from lariba.identity.authn import current_principal

# How long a key and its response are kept; an expired key may be used again.
RETENTION = timedelta(hours=24)
HEADER = "Idempotency-Key"
ANONYMOUS = "anonymous"
_VALID_KEY = re.compile(rb"[\x21-\x7e]{1,255}")
_INVALID_KEY_MESSAGE = "must be 1 to 255 visible ASCII characters"
_BODY_PURPOSE = "idempotency"
# What a replay repeats besides status and body: the media type, where a created resource
# is, and that a response carrying a secret must not be cached.
_STORED_HEADERS = ("content-type", "location", "cache-control")


class IdempotencyKey(Base):
    """A key claimed by a POST. Only committed together with the response of a request
    that succeeded, so every row other transactions see holds a response to replay."""

    __tablename__ = "idempotency_keys"

    # Whom the key belongs to: "user:<id>", "api_key:<sha256 of the key>" or "anonymous".
    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(CHAR(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None]
    response_headers: Mapped[dict[str, str]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    response_body_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(index=True)


class IdempotencyMiddleware:
    """Runs a POST carrying an ``Idempotency-Key`` at most once per key and owner: the
    same request again gets the stored response (``Idempotent-Replayed: true``), another
    request with the key a 409. Only responses below 400 are stored; a failed request
    leaves nothing behind and may be retried with the same key."""

    def __init__(self, app: ASGIApp, *, box: SecretBox) -> None:
        self.app = app
        self.box = box

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _idempotency_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not _VALID_KEY.fullmatch(key):
            await _invalid_key(request)(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its whole body
        response = await self._respond(
            request, _replaying(body, receive), key=key.decode("ascii"), body=body
        )
        await response(scope, receive, send)

    async def _respond(
        self, request: Request, receive: Receive, *, key: str, body: bytes
    ) -> ASGIApp:
        """The response to send, decided (and committed) before any of it is sent."""
        scope = request.scope
        fingerprint = _fingerprint(scope, body)
        sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with sessionmaker() as session:
            try:
                owner = await _owner(request)
                stored = await _claim(
                    session,
                    owner=owner,
                    key=key,
                    fingerprint=fingerprint,
                    method=scope["method"],
                    path=redact_path(scope["path"]),
                )
                if stored is not None:
                    return await self._answer_with_stored(
                        request, session, stored=stored, owner=owner, fingerprint=fingerprint
                    )
            except Exception as exc:
                return await _handled(request, exc)
            # get_db_session hands this session to the endpoint: its changes commit with
            # the stored response, or roll back with the claim.
            scope.setdefault("state", {})["db_session"] = session
            captured = _CapturedResponse()
            await self.app(scope, receive, captured.send)
            try:
                if captured.status < 400:
                    await session.execute(
                        update(IdempotencyKey)
                        .where(_row(owner, key))
                        .values(
                            status_code=captured.status,
                            response_headers=captured.stored_headers(),
                            response_body_encrypted=self.box.encrypt(
                                captured.body, purpose=_BODY_PURPOSE
                            ),
                        )
                    )
                    await session.commit()
                else:
                    await session.rollback()
            except Exception as exc:
                return await _handled(request, exc)
            return captured

    async def _answer_with_stored(
        self,
        request: Request,
        session: AsyncSession,
        *,
        stored: IdempotencyKey,
        owner: str,
        fingerprint: str,
    ) -> ASGIApp:
        if owner != ANONYMOUS:
            # A replay skips the endpoint, and with it authentication: the caller must still
            # be able to act as the key's owner (no replay after logout or to a revoked key).
            await current_principal(session, request.app.state.identity, _bearer_token(request))
        if stored.fingerprint != fingerprint:
            return problem_response(
                request,
                status=409,
                code="idempotency_key_reused",
                title="Conflict",
                detail=f"This {HEADER} was already used with a different request; "
                "send a new key with a new request.",
            )
        # A committed row always holds its response (see IdempotencyKey).
        assert stored.status_code is not None
        assert stored.response_body_encrypted is not None
        return Response(
            self.box.decrypt(stored.response_body_encrypted, purpose=_BODY_PURPOSE),
            status_code=stored.status_code,
            headers={**stored.response_headers, "Idempotent-Replayed": "true"},
        )


@dataclass
class _CapturedResponse:
    """The app's response, held back until its transaction has ended."""

    messages: list[Message] = field(default_factory=list)

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        for message in self.messages:
            if message["type"] == "http.response.start":
                return int(message["status"])
        return 500  # no response at all is a failure, never stored

    @property
    def body(self) -> bytes:
        return b"".join(
            message.get("body", b"")
            for message in self.messages
            if message["type"] == "http.response.body"
        )

    def stored_headers(self) -> dict[str, str]:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in start.get("headers", [])
            if name.decode("latin-1").lower() in _STORED_HEADERS
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for message in self.messages:
            await send(message)


def install_idempotency(app: FastAPI) -> None:
    """Adds the middleware. Call it before adding the body size limit and request context
    middleware, so that it runs inside them: on bounded bodies, with a request id."""
    app.add_middleware(IdempotencyMiddleware, box=SecretBox(app.state.settings.master_key))


async def purge_expired_idempotency_keys(session: AsyncSession, *, limit: int = 10_000) -> int:
    """Deletes up to ``limit`` expired keys and returns how many; the caller commits.
    Requests already ignore expired keys: this only reclaims their space."""
    expired = (
        select(IdempotencyKey.scope, IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= func.now())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(IdempotencyKey).where(tuple_(IdempotencyKey.scope, IdempotencyKey.key).in_(expired))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _row(owner: str, key: str) -> ColumnElement[bool]:
    return (IdempotencyKey.scope == owner) & (IdempotencyKey.key == key)


async def _claim(
    session: AsyncSession, *, owner: str, key: str, fingerprint: str, method: str, path: str
) -> IdempotencyKey | None:
    """Takes the key for this request (returns None), or returns the stored row of the
    request that took it. A concurrent request with the same key waits on the INSERT
    until the first one's transaction ends: then it finds the stored response, or takes
    the key itself if the first one failed and rolled back."""
    await session.execute(
        delete(IdempotencyKey).where(_row(owner, key), IdempotencyKey.expires_at <= func.now())
    )
    while True:
        claimed = await session.scalar(
            insert(IdempotencyKey)
            .values(
                scope=owner,
                key=key,
                fingerprint=fingerprint,
                method=method,
                path=path,
                expires_at=func.now() + RETENTION,
            )
            .on_conflict_do_nothing(index_elements=[IdempotencyKey.scope, IdempotencyKey.key])
            .returning(IdempotencyKey.scope)
        )
        if claimed is not None:
            return None
        stored = await session.scalar(select(IdempotencyKey).where(_row(owner, key)))
        if stored is not None:
            return stored
        # Purged between the two statements: claim it again.


async def _owner(request: Request) -> str:
    """Whom the key belongs to, from the bearer credential. Invalid credentials are
    anonymous (the endpoint then answers 401 itself); a token's subject only counts once
    its signature is verified."""
    token = _bearer_token(request)
    if token is None:
        return ANONYMOUS
    if looks_like_api_key(token):
        return "api_key:" + hash_api_key(token)
    try:
        claims = await request.app.state.identity.keyring.verify(token, use="access")
    except Unauthorized:
        return ANONYMOUS
    return f"user:{claims.user_id}"


def _bearer_token(request: Request) -> str | None:
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return token if scheme.lower() == "bearer" and token else None


async def _handled(request: Request, exc: Exception) -> ASGIApp:
    """The app's own answer to an error raised outside its exception handling (the
    database being down is the same 503 here). Errors without a specific handler
    propagate, as any unhandled error does."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        handler = request.app.exception_handlers.get(cls)
        if handler is not None:
            response = handler(request, exc)
            answer: ASGIApp = await response if inspect.isawaitable(response) else response
            return answer
    raise exc


def _idempotency_key(scope: Scope) -> bytes | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            key: bytes = value
            return key
    return None


def _invalid_key(request: Request) -> Response:
    return problem_response(
        request,
        status=422,
        code="invalid_idempotency_key",
        title="Invalid input",
        detail=f"{HEADER}: {_INVALID_KEY_MESSAGE}",
        extra={
            "errors": [{"field": HEADER, "message": _INVALID_KEY_MESSAGE, "location": "header"}]
        },
    )


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """Hands the app the body already read, then the client's own messages (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body):
        # Length-prefixed, so that no two different requests hash the same parts.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def idempotency_tasks(sessionmaker: async_sessionmaker[AsyncSession]) -> TaskRegistrar:
    """The hourly purge of expired keys, a batch per run."""

    def register(app: procrastinate.App) -> None:
        @app.periodic(cron="17 * * * *", periodic_id="purge-idempotency-keys")
        @app.task(name="purge_idempotency_keys", queueing_lock="purge_idempotency_keys")
        async def purge_idempotency_keys(timestamp: int) -> int:
            async with sessionmaker.begin() as session:
                return await purge_expired_idempotency_keys(session)

    return register
