"""E-mail addresses as the API accepts them, and as its schema describes them."""

from __future__ import annotations

from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import EmailStr, Field


def _any_case(word: str) -> str:
    return "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else char for char in word)


# email-validator refuses domains under the special-use names of RFC 6761 (`.test`,
# `.invalid`, `.localhost`, ...); `format: email` alone does not say so.
_NOT_SPECIAL_USE = r"^(?!.*[.@](?:" + "|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)) + r")\.?$)"

EmailAddress = Annotated[
    EmailStr,
    Field(
        json_schema_extra={"pattern": _NOT_SPECIAL_USE},
    ),
]
