"""What the sync and async clients share when they send a ``Call`` over HTTP."""

from __future__ import annotations

import httpx

from lariba.client.errors import ConnectionFailed
from lariba.client.session import Call

USER_AGENT = "lariba-client"
DEFAULT_TIMEOUT_SECONDS = 30.0
# Bytes handed to a download's writer at a time.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024


def http_request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    return http.build_request(
        call.method,
        call.path,
        # Given even empty, httpx replaces the query a presigned URL carries.
        params=call.params or None,
        json=call.json,
        data=call.form,
        content=call.content,
        headers=dict(call.headers),
    )


def unreachable(
    http: httpx.Client | httpx.AsyncClient, call: Call, exc: httpx.TransportError
) -> ConnectionFailed:
    """The error naming the server that did not answer: the client's own, or the storage
    service of a presigned URL."""
    reason = str(exc) or type(exc).__name__
    url = httpx.URL(call.path)
    if url.is_absolute_url:
        return ConnectionFailed(str(url.copy_with(path="/", query=None)).rstrip("/"), reason)
    return ConnectionFailed(str(http.base_url).rstrip("/"), reason)
