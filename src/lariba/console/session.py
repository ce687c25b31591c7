"""Browser sessions of the console: a secure cookie, CSRF protection, and the signed-in
person as a dependency of every page.

The cookie holds a console-session token (a signed JWT of its own kind, bound to the
login session the API knows). Each request turns it into a short-lived access token for
the in-process API calls, so logging out, a password change or an admin disabling the
account ends the console session as it ends every other.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from base64 import urlsafe_b64encode
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from lariba.console.api import ApiProblem, ConsoleApi
from lariba.core.errors import Unauthorized
from lariba.core.settings import Environment, Settings
from lariba.identity.runtime import IdentityRuntime
from lariba.identity.tokens import TokenClaims

SESSION_COOKIE = "lariba_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A minted access token is reused until this close to its expiry.
_TOKEN_MARGIN_SECONDS = 30
_TOKEN_CACHE_SIZE = 10_000


class LoginRequired(Exception):
    """No live console session: the page sends the browser to the login form."""


class CsrfRefused(Exception):
    """A state-changing request that did not come from the console's own pages."""


class AccessTokens:
    """Access tokens minted for console sessions, kept until shortly before they expire
    (one signature per session and token lifetime, not one per page)."""

    def __init__(self, identity: IdentityRuntime) -> None:
        self._identity = identity
        self._tokens: OrderedDict[uuid.UUID, tuple[str, float]] = OrderedDict()

    async def for_session(self, claims: TokenClaims) -> str:
        now = time.time()
        cached = self._tokens.get(claims.session_id)
        if cached is not None and cached[1] - _TOKEN_MARGIN_SECONDS > now:
            return cached[0]
        remaining = int(claims.expires_at.timestamp() - now)
        ttl = max(1, min(self._identity.settings.access_token_ttl_seconds, remaining))
        issued = await self._identity.keyring.issue(
            use="access", user_id=claims.user_id, session_id=claims.session_id, ttl_seconds=ttl
        )
        self._tokens[claims.session_id] = (issued.token, now + ttl)
        while len(self._tokens) > _TOKEN_CACHE_SIZE:
            self._tokens.popitem(last=False)
        return issued.token


def csrf_token(settings: Settings, session_id: uuid.UUID) -> str:
    """The session's CSRF token: derived from it with a key only the server has."""
    key = hashlib.sha256(b"lariba-console-csrf:" + settings.master_key).digest()
    mac = hmac.new(key, str(session_id).encode(), hashlib.sha256).digest()
    return urlsafe_b64encode(mac).decode().rstrip("=")


def cookie_is_secure(request: Request) -> bool:
    """Secure cookies outside local use: in production, and whenever the page is HTTPS."""
    settings: Settings = request.app.state.settings
    return settings.env is Environment.production or request.url.scheme == "https"


def _own_origins(request: Request) -> set[str]:
    settings: Settings = request.app.state.settings
    return {f"{request.url.scheme}://{request.url.netloc}", settings.console_origin}


def check_origin(request: Request) -> None:
    """Refuses a state-changing request a browser says came from another site."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfRefused
    origin = request.headers.get("origin")
    if origin is not None and origin not in _own_origins(request):
        raise CsrfRefused


async def check_csrf(request: Request, expected: str) -> None:
    check_origin(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, expected):
        raise CsrfRefused


def set_session_cookie(request: Request, response: Response, *, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=cookie_is_secure(request),
        samesite="lax",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        secure=cookie_is_secure(request),
        samesite="lax",
    )


async def start_console_session(request: Request, response: Response, access_token: str) -> None:
    """After a successful login through the API: a console cookie for the same session,
    living as long as the session may."""
    identity: IdentityRuntime = request.app.state.identity
    claims = await identity.keyring.verify(access_token, use="access")
    ttl = identity.settings.refresh_token_ttl_seconds
    issued = await identity.keyring.issue(
        use="console", user_id=claims.user_id, session_id=claims.session_id, ttl_seconds=ttl
    )
    set_session_cookie(request, response, token=issued.token, max_age=ttl)


@dataclass(frozen=True)
class Visitor:
    """The signed-in person on this request, and their way to the API."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    csrf_token: str
    api: ConsoleApi
    me: dict[str, Any]
    access_token: str

    @property
    def is_platform_admin(self) -> bool:
        return bool(self.me.get("is_platform_admin"))


async def signed_in(request: Request) -> Visitor:
    """The page's visitor; LoginRequired without a live session, CsrfRefused for a
    state-changing request without the session's CSRF token."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired
    identity: IdentityRuntime = request.app.state.identity
    try:
        claims = await identity.keyring.verify(cookie, use="console")
    except Unauthorized as exc:
        raise LoginRequired from exc
    token = await request.app.state.console_tokens.for_session(claims)
    api = ConsoleApi(request, token=token)
    try:
        me = await api.get("/v1/me")
    except ApiProblem as problem:
        if problem.status == 401:
            raise LoginRequired from problem
        raise
    expected = csrf_token(identity.settings, claims.session_id)
    if request.method not in SAFE_METHODS:
        await check_csrf(request, expected)
    return Visitor(
        user_id=claims.user_id,
        session_id=claims.session_id,
        csrf_token=expected,
        api=api,
        me=me,
        access_token=token,
    )


SignedIn = Annotated[Visitor, Depends(signed_in)]
