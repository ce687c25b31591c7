"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Form
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from lariba.core.addresses import EmailAddress
from lariba.core.text import NonBlank

Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=200), NonBlank]


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(description="Your e-mail; used to log in.")
    password: Password = Field(
        description="At least 10 characters, not a common password.",
        json_schema_extra={"minLength": 10},
    )
    display_name: DisplayName | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str | None
    is_platform_admin: bool
    mfa_enabled: bool
    created_at: datetime


class UpdateMeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds until the login session expires.")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    everywhere: StrictBool = Field(
        default=False, description="End every session of the account, not only this one."
    )


class ChangePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Password
    new_password: Password


class PasswordLoginForm:
    """The OAuth2 password grant (RFC 6749 §4.3) plus ``otp`` for accounts with two-factor."""

    def __init__(
        self,
        username: Annotated[
            str, Form(min_length=1, max_length=320, description="Your e-mail address.")
        ],
        password: Annotated[str, Form(min_length=1, max_length=256)],
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        otp: Annotated[
            str | None,
            Form(
                max_length=64,
                description="Two-factor code (6 digits) or a recovery code, when MFA is on.",
            ),
        ] = None,
        scope: Annotated[str, Form(max_length=1000)] = "",
        client_id: Annotated[str | None, Form(max_length=200)] = None,
        client_secret: Annotated[str | None, Form(max_length=200)] = None,
    ) -> None:
        self.username = username
        self.password = password
        self.otp = otp
