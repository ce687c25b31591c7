"""The client's protocol, free of network I/O: every API call is a generator (a *flow*)
that yields the HTTP requests (``Call``), streamed downloads (``Download``) and waits
(``Pause``) it needs and returns the parsed result. ``Client`` and ``AsyncClient`` only
carry the steps out, so both behave the same; a transport error is thrown into the flow,
so that it can clean up (abort an upload) before it ends.

``Session`` holds the credentials: it logs in with a password when asked to, adds the
bearer token, refreshes an expired access token once and retries, and turns a failed
answer into a typed exception."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from lariba.client.errors import Unauthorized, error_from_response
from lariba.client.models import Tokens

T = TypeVar("T")

# How long a request waits for a token refresh another request already started.
_REFRESH_WAIT_SECONDS = 0.05


@dataclass(frozen=True)
class Call:
    """One HTTP request, to a path relative to the client's base URL or to an absolute URL
    (a presigned one, sent with ``authenticated=False``). ``content`` is a raw body."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    form: Mapping[str, str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = True


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
    ) -> None:
        if token is not None and (email is not None or password is not None):
            raise ValueError("give either token= or email=/password=, not both")
        if (email is None) != (password is None):
            raise ValueError("email= and password= go together")
        self.tokens = Tokens(token, refresh_token) if token is not None else None
        self._login: tuple[str, str, str | None] | None = None
        if email is not None and password is not None:
            self._login = (email, password, otp)
        self._refreshing = False

    def request(self, call: Call) -> Flow[httpx.Response]:
        """The successful answer to ``call``; raises the typed error of a failed one."""
        if call.authenticated and self.tokens is None and self._login is not None:
            yield from self.log_in()
        used = self.tokens
        response = yield from send(self._authorized(call))
        if (
            call.authenticated
            and used is not None
            and _expired(response)
            and (yield from self._refresh(used))
        ):
            response = yield from send(self._authorized(call))
        if response.is_error:
            raise error_from_response(response)
        return response

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

    def _authorized(self, call: Call) -> Call:
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


def _expired(response: httpx.Response) -> bool:
    if response.status_code != 401:
        return False
    error = error_from_response(response)
    return isinstance(error, Unauthorized) and error.code == "token_expired"
