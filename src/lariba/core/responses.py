"""What routers share about responses: documented problem answers, and no caching of
responses that carry a secret."""

from __future__ import annotations

from fastapi import Depends, Response

UNAUTHENTICATED: dict[int | str, dict[str, str]] = {
    401: {"description": "Not authenticated (problem+json)"}
}
INVALID_INPUT: dict[int | str, dict[str, str]] = {
    422: {"description": "Invalid input; `errors` names each field (problem+json)"}
}


async def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


# For routes whose response carries a secret (tokens, keys, TOTP seeds, recovery codes,
# invitation tokens): no cache, shared or private, may keep it.
NoStore = Depends(_no_store)
