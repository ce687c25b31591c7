"""The client's protocol, free of network I/O: every API call is a generator (a *flow*)
that yields the HTTP requests (``Call``), streamed downloads (``Download``) and waits
(``Pause``) it needs and returns the parsed result. ``Client`` and ``AsyncClient`` only
carry the steps out, so both behave the same; a transport error is thrown into the flow,
so that it can clean up (abort an upload) before it ends.

``Session`` holds the credentials: it logs in with a password when asked to, adds the
bearer token, refreshes an expired access token once and retries, waits out a 429 or 503
as its ``Retry-After`` says (a few times, each wait capped), and turns a failed answer
into a typed exception."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from lariba.client.errors import Unauthorized, error_from_response
from lariba.client.models import Tokens

T = TypeVar("T")

# How long a request waits for a token refresh another request already started.
_REFRESH_WAIT_SECONDS = 0.05
# Answers that mean "not now": the request was not carried out and may be sent again.
RETRYABLE_STATUSES = frozenset({429, 503})
DEFAULT_RETRIES = 3
DEFAULT_MAX_RETRY_WAIT_SECONDS = 30.0
# The wait when a 429 or 503 gives no usable Retry-After.
_DEFAULT_RETRY_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class Call:
    """One HTTP request, to a path relative to the client's base URL or to an absolute URL
    (a presigned one, sent with ``authenticated=False``). ``content`` is a raw body. A
    ``stream`` call is answered with its successful response still open, its body unread
    (the caller reads and closes it); a failed one's body is read."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    form: Mapping[str, str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = True
    stream: bool = False


@dataclass(frozen=True)
class Download:
    """A request whose successful answer's body is handed to ``write`` chunk by chunk as
    it arrives, never held whole. The flow is sent the answer (its body already read
    when it failed, so that its error can be parsed)."""

    call: Call
    write: Callable[[bytes], object]


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Call | Download | Pause
# A flow is sent the answer to each Call or Download it yields (None after a Pause).
Flow = Generator[Step, httpx.Response | None, T]


def pause(seconds: float) -> Flow[None]:
    yield Pause(seconds)


def send(step: Call | Download) -> Flow[httpx.Response]:
    """The raw answer to ``step``, exactly as sent."""
    response = yield step
    assert response is not None, "a Call or Download is answered with a response"
    return response


def checked(step: Call | Download) -> Flow[httpx.Response]:
    """The successful answer to an unauthenticated ``step`` (a presigned URL); raises the
    typed error of a failed one."""
    response = yield from send(step)
    if response.is_error:
        raise error_from_response(response)
    return response


class Session:
    """The credentials of one client and the rules for using them."""

    def __init__(
        self,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        email: str | None = None,
        password: str | None = None,
        otp: str | None = None,
        retries: int = DEFAULT_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT_SECONDS,
    ) -> None:
        if retries < 0 or max_retry_wait < 0:
            raise ValueError("retries= and max_retry_wait= must not be negative")
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        if token is not None and (email is not None or password is not None):
            raise ValueError("give either token= or email=/password=, not both")
        if (email is None) != (password is None):
            raise ValueError("email= and password= go together")
        self.tokens = Tokens(token, refresh_token) if token is not None else None
        self._login: tuple[str, str, str | None] | None = None
        if email is not None and password is not None:
            self._login = (email, password, otp)
        self._refreshing = False

    def request(self, step: Call | Download) -> Flow[httpx.Response]:
        """The successful answer to ``step``; raises the typed error of a failed one."""
        step = _once_only(step)
        call = step.call if isinstance(step, Download) else step
        if call.authenticated and self.tokens is None and self._login is not None:
            yield from self.log_in()
        used = self.tokens
        response = yield from self._patiently(step)
        if (
            call.authenticated
            and used is not None
            and _expired(response)
            and (yield from self._refresh(used))
        ):
            response = yield from self._patiently(step)
        if response.is_error:
            raise error_from_response(response)
        return response

    def _patiently(self, step: Call | Download) -> Flow[httpx.Response]:
        """The answer to ``step``, sent again while the server answers 429 or 503, after
        the wait its ``Retry-After`` asks for (at most ``max_retry_wait``), up to
        ``retries`` times; the last answer however it went."""
        attempt = 0
        while True:
            response = yield from send(self._authorized(step))
            if response.status_code not in RETRYABLE_STATUSES or attempt >= self.retries:
                return response
            attempt += 1
            yield from pause(min(retry_wait(response), self.max_retry_wait))

    def log_in(self) -> Flow[Tokens]:
        if self._login is None:
            raise ValueError("this client was given no email= and password= to log in with")
        email, password, otp = self._login
        form = {"username": email, "password": password}
        if otp is not None:
            form["otp"] = otp
        response = yield from self.request(
            Call("POST", "/v1/auth/token", form=form, authenticated=False)
        )
        return self._keep(response)

    def _refresh(self, used: Tokens) -> Flow[bool]:
        """Refreshes the tokens ``used`` by a request that found its access token expired;
        True when the request is worth retrying. One refresh at a time: a refresh token is
        good once, and the server revokes the session if it sees one used twice."""
        while self._refreshing:
            yield from pause(_REFRESH_WAIT_SECONDS)
        if self.tokens is not None and self.tokens.access_token != used.access_token:
            return True  # another request refreshed meanwhile
        if used.refresh_token is None:
            return False
        self._refreshing = True
        try:
            response = yield from self.request(
                Call(
                    "POST",
                    "/v1/auth/refresh",
                    json={"refresh_token": used.refresh_token},
                    authenticated=False,
                )
            )
        finally:
            self._refreshing = False
        self._keep(response)
        return True

    def _keep(self, response: httpx.Response) -> Tokens:
        body = response.json()
        self.tokens = Tokens(body["access_token"], body.get("refresh_token"))
        return self.tokens

    def _authorized(self, step: Call | Download) -> Call | Download:
        """``step`` with the session's bearer token, when it is authenticated."""
        if isinstance(step, Download):
            return Download(self._authorized_call(step.call), step.write)
        return self._authorized_call(step)

    def _authorized_call(self, call: Call) -> Call:
        if not call.authenticated or self.tokens is None:
            return call
        headers = {**call.headers, "Authorization": f"Bearer {self.tokens.access_token}"}
        return dataclasses.replace(call, headers=headers)

    def pages(self, call: Call, *, page_size: int | None = None) -> Flow[list[Any]]:
        """The body of every page of a list, following ``next_cursor``."""
        bodies: list[Any] = []
        cursor: str | None = None
        while True:
            params = call.params
            if page_size is not None:
                params += (("limit", str(page_size)),)
            if cursor is not None:
                params += (("cursor", cursor),)
            response = yield from self.request(dataclasses.replace(call, params=params))
            body = response.json()
            bodies.append(body)
            cursor = body.get("next_cursor")
            if not cursor:
                return bodies

    def all_pages(self, call: Call, *, page_size: int | None = None) -> Flow[list[Any]]:
        """The items of every page of a list."""
        bodies = yield from self.pages(call, page_size=page_size)
        return [item for body in bodies for item in body["items"]]


def retry_wait(response: httpx.Response) -> float:
    """The seconds a 429 or 503 asks to wait: ``Retry-After`` as seconds or as an HTTP
    date; a second when it says neither."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return _DEFAULT_RETRY_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else _DEFAULT_RETRY_WAIT_SECONDS
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_WAIT_SECONDS
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _expired(response: httpx.Response) -> bool:
    if response.status_code != 401:
        return False
    error = error_from_response(response)
    return isinstance(error, Unauthorized) and error.code == "token_expired"


def _once_only(step: Call | Download) -> Call | Download:
    """An authenticated POST with an ``Idempotency-Key`` of its own (unless the caller gave
    one): a 503 may come after the server applied the change (its commit's answer was
    lost), and the retry must then get the first answer back, not make a second
    resource. The key is the same for every retry of this one request."""
    if isinstance(step, Download):
        return step
    if step.method != "POST" or not step.authenticated:
        return step
    if any(name.lower() == "idempotency-key" for name in step.headers):
        return step
    return dataclasses.replace(step, headers={**step.headers, "Idempotency-Key": str(uuid.uuid4())})
