"""Decimal amounts in request bodies: a JSON number or a numeric string, never a boolean
(which a lenient parser would read as 1 or 0)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("give a number, not true or false")
    return value


DecimalAmount = Annotated[Decimal, BeforeValidator(_not_a_boolean)]
