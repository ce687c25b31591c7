"""Timestamps in query strings: ISO 8601 only."""

from __future__ import annotations

from pydantic import BeforeValidator


def _refuse_bare_numbers(value: object) -> object:
    """Pydantic reads a bare number as a Unix time; the API promises (and documents)
    ISO 8601, so ``from=0.5`` (or ``-4.7e-104``) is refused rather than read as 1970."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("use ISO 8601, such as 2026-11-30T12:00:00Z")
    return value


# Annotated[datetime | None, ISO_8601, Query(...)]
ISO_8601 = BeforeValidator(_refuse_bare_numbers)
