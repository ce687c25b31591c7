"""One transaction per request, committed before the response goes out."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.models import User
from tests.fixtures.identity import DEFAULT_PASSWORD


async def test_change_is_committed_before_the_response_starts(
    app: FastAPI, db: AsyncSession
) -> None:
    """A client that acts on a 2xx must find the change in the database — even when its
    next request reaches another replica while this one is still finishing up."""
    body = json.dumps({"email": "tx@example.com", "password": DEFAULT_PASSWORD}).encode()
    seen: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["users"] = await db.scalar(
                select(func.count()).select_from(User).where(User.email == "tx@example.com")
            )
            await db.rollback()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/auth/signup",
        "raw_path": b"/v1/auth/signup",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert seen == {"status": 201, "users": 1}
