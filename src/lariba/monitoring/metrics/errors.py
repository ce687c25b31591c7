"""Errors of metric queries."""

from __future__ import annotations

from lariba.core.errors import InvalidInput


class InvalidQuery(InvalidInput):
    """A query parameter that passed its type but breaks a rule; names the parameter."""

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(field, message, code=code)
        self.extra = {"errors": [{"field": field, "message": message, "location": "query"}]}
