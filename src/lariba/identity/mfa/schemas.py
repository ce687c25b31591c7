"""Request and response bodies of the two-factor (TOTP) endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lariba.core.text import NonBlank
from lariba.identity.auth.schemas import Password

SecondFactorCode = Annotated[str, StringConstraints(min_length=1, max_length=64), NonBlank]


class MfaStatus(BaseModel):
    enabled: bool = Field(description="Logins need a second factor.")
    pending: bool = Field(description="Enrolment was started and awaits confirmation with a code.")
    recovery_codes_remaining: int = Field(description="Unused recovery codes.")


class StartEnrolmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password = Field(description="Your current password.")


class MfaEnrolment(BaseModel):
    secret: str = Field(
        description="The TOTP secret (base32), for typing into an authenticator app."
    )
    otpauth_uri: str = Field(description="The same secret as an otpauth:// URI, for a QR code.")


class ConfirmEnrolmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: SecondFactorCode = Field(description="The 6-digit code the authenticator app shows.")


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(
        description="One-time codes to log in without the authenticator. Shown only now: "
        "store them safely."
    )


class DisableMfaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password = Field(description="Your current password.")
    code: SecondFactorCode = Field(description="A 6-digit code or an unused recovery code.")


class RegenerateRecoveryCodesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: SecondFactorCode = Field(description="A 6-digit code or an unused recovery code.")
