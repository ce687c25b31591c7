"""What the sync and async clients share when they send a ``Call`` over HTTP."""

from __future__ import annotations

import httpx

from lariba.client.errors import ConnectionFailed
from lariba.client.session import Call

USER_AGENT = "lariba-client"
DEFAULT_TIMEOUT_SECONDS = 30.0


def http_request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    return http.build_request(
        call.method,
        call.path,
        params=call.params,
        json=call.json,
        data=call.form,
        headers=dict(call.headers),
    )


def unreachable(
    http: httpx.Client | httpx.AsyncClient, exc: httpx.TransportError
) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(str(http.base_url).rstrip("/"), reason)
