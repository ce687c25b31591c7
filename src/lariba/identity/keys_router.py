"""The public keys that verify Lariba's tokens (JWKS, RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from lariba.core.db import DbSession
from lariba.identity.tokens import published_keys

router = APIRouter(tags=["auth"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify Lariba tokens")
async def jwks(session: DbSession, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return {"keys": await published_keys(session)}
