"""Numbers in request bodies, read at their JSON types: a whole number is a JSON number
without a fraction (``20`` or ``20.0``, as JSON Schema's ``integer`` says), never a
string or a boolean; a decimal amount is a number or a numeric string, never a boolean.
A lenient parser would read ``"20"`` as 20 and ``true`` as 1."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("give a number, not true or false")
    return value


def _a_json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("give a whole number, not a string or true or false")
    return value


WholeNumber = Annotated[int, BeforeValidator(_a_json_number)]
DecimalAmount = Annotated[Decimal, BeforeValidator(_not_a_boolean)]
