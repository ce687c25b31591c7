"""Errors of the audit, activity and log endpoints."""

from __future__ import annotations

from lariba.core.errors import LaribaError


class InvalidQuery(LaribaError):
    """A query parameter that passed the schema but breaks a rule; names it."""

    status = 422
    code = "validation_failed"
    title = "Invalid input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}",
            extra={"errors": [{"field": field, "message": message, "location": "query"}]},
        )
