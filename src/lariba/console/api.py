"""The console's way to the service layer: the public API itself, called in-process.

A page handler never touches a repository or a service rule of its own. It calls the same
HTTP endpoints a script would (through ASGI, no network hop), as the signed-in person, so
validation, permissions, quotas, idempotency and audit are exactly the API's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

_BASE_URL = "http://console.internal"
# Headers of the browser's request worth passing on: the audit trail and the session
# records show the person's browser, and the request id ties the log lines together.
_FORWARDED = ("user-agent", "x-request-id")


@dataclass
class ApiProblem(Exception):
    """A problem+json answer of the API: what went wrong, per field when the input did."""

    status: int
    code: str
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"

    def field_errors(self) -> dict[str, str]:
        """The first message for each input field; a nested field (``firewall.0.cidr``)
        also counts for its top-level form field (``firewall``)."""
        out: dict[str, str] = {}
        for error in self.errors:
            name = error.get("field", "")
            message = error.get("message", "is not valid")
            out.setdefault(name, message)
            out.setdefault(name.split(".", 1)[0], f"{name}: {message}")
        return out

    @classmethod
    def of(cls, response: httpx.Response) -> ApiProblem:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        known = {"type", "title", "status", "detail", "code", "errors", "instance", "request_id"}
        return cls(
            status=response.status_code,
            code=str(body.get("code", "error")),
            detail=str(body.get("detail") or body.get("title") or response.reason_phrase),
            errors=list(body.get("errors") or []),
            extra={k: v for k, v in body.items() if k not in known},
        )


class ConsoleApi:
    """Calls the application's API as one person (their access token) from one request."""

    def __init__(self, request: Request, *, token: str | None) -> None:
        self._request = request
        self._token = token

    def _client(self) -> httpx.AsyncClient:
        client = self._request.client
        address = (client.host, client.port) if client else ("127.0.0.1", 0)
        transport = httpx.ASGITransport(app=self._request.app, client=address)
        headers = {name: value for name in _FORWARDED if (value := self._request.headers.get(name))}
        request_id = getattr(self._request.state, "request_id", None)
        if request_id:
            headers["x-request-id"] = request_id
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        return httpx.AsyncClient(transport=transport, base_url=_BASE_URL, headers=headers)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The raw response; raises ApiProblem for any 4xx/5xx."""
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        async with self._client() as client:
            response = await client.request(
                method, path, json=json, data=data, params=query, headers=headers
            )
        if response.status_code >= 400:
            raise ApiProblem.of(response)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.call("GET", path, params=params)).json()

    async def post(self, path: str, body: Any = None) -> Any:
        response = await self.call("POST", path, json=body)
        return response.json() if response.content else None

    async def patch(self, path: str, body: Any) -> Any:
        return (await self.call("PATCH", path, json=body)).json()

    async def put(self, path: str, body: Any) -> Any:
        response = await self.call("PUT", path, json=body)
        return response.json() if response.content else None

    async def delete(self, path: str, **params: Any) -> Any:
        response = await self.call("DELETE", path, params=params)
        return response.json() if response.content else None
