"""HTTP endpoints of the caller's two-factor authentication (``/v1/me/mfa``)."""

from __future__ import annotations

from fastapi import APIRouter, status

from lariba.core.db import DbSession
from lariba.core.responses import UNAUTHENTICATED, NoStore
from lariba.identity.audit import Context
from lariba.identity.authn import InteractivePrincipal
from lariba.identity.mfa import service
from lariba.identity.mfa.schemas import (
    ConfirmEnrolmentRequest,
    DisableMfaRequest,
    MfaEnrolment,
    MfaStatus,
    RecoveryCodes,
    RegenerateRecoveryCodesRequest,
    StartEnrolmentRequest,
)
from lariba.identity.runtime import Runtime

router = APIRouter(prefix="/v1/me/mfa", tags=["mfa"])

_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    403: {"description": "Called with an API key: `interactive_login_required`"},
}
_CHECKED: dict[int | str, dict[str, str]] = {
    422: {"description": "`invalid_password` or `invalid_mfa_code`, naming the field"},
    429: {"description": "Too many failed attempts on the account (`login_throttled`)"},
}


@router.get("", response_model=MfaStatus, summary="My two-factor status", responses=_PROBLEMS)
async def mfa_status(principal: InteractivePrincipal, session: DbSession) -> MfaStatus:
    return await service.mfa_status(session, principal=principal)


@router.post(
    "",
    response_model=MfaEnrolment,
    dependencies=[NoStore],
    summary="Start two-factor enrolment: get a TOTP secret to add to an authenticator app",
    responses={
        409: {"description": "Already enabled: `mfa_already_enabled`"},
        **_CHECKED,
        **_PROBLEMS,
    },
)
async def start_enrolment(
    body: StartEnrolmentRequest,
    principal: InteractivePrincipal,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> MfaEnrolment:
    return await service.start_enrolment(
        session, runtime, ctx=ctx, principal=principal, password=body.password
    )


@router.post(
    "/confirm",
    response_model=RecoveryCodes,
    dependencies=[NoStore],
    summary="Confirm enrolment with a code: turns two-factor on, returns recovery codes once",
    responses={
        409: {"description": "`mfa_not_pending` or `mfa_already_enabled`"},
        422: {"description": "The code does not match: `invalid_mfa_code`"},
        **_PROBLEMS,
    },
)
async def confirm_enrolment(
    body: ConfirmEnrolmentRequest,
    principal: InteractivePrincipal,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> RecoveryCodes:
    return await service.confirm_enrolment(
        session, runtime, ctx=ctx, principal=principal, code=body.code
    )


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Turn two-factor off (needs the password and a code)",
    responses={
        409: {"description": "Not enabled: `mfa_not_enabled`"},
        **_CHECKED,
        **_PROBLEMS,
    },
)
async def disable(
    body: DisableMfaRequest,
    principal: InteractivePrincipal,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> None:
    await service.disable(
        session, runtime, ctx=ctx, principal=principal, password=body.password, code=body.code
    )


@router.post(
    "/recovery-codes",
    response_model=RecoveryCodes,
    dependencies=[NoStore],
    summary="Replace all recovery codes (needs a code); the new ones are shown once",
    responses={
        409: {"description": "Not enabled: `mfa_not_enabled`"},
        **_CHECKED,
        **_PROBLEMS,
    },
)
async def regenerate_recovery_codes(
    body: RegenerateRecoveryCodesRequest,
    principal: InteractivePrincipal,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> RecoveryCodes:
    return await service.regenerate_recovery_codes(
        session, runtime, ctx=ctx, principal=principal, code=body.code
    )
