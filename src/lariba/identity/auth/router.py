"""HTTP endpoints of sign-up, login, tokens and the caller's own account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, status

from lariba.core.db import DbSession
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED, NoStore
from lariba.identity.audit import Context
from lariba.identity.auth import service
from lariba.identity.auth.schemas import (
    ChangePasswordRequest,
    LogoutRequest,
    PasswordLoginForm,
    RefreshRequest,
    SignupRequest,
    TokenResponse,
    UpdateMeRequest,
    UserOut,
)
from lariba.identity.authn import INTERACTIVE_ONLY, CurrentPrincipal, InteractivePrincipal
from lariba.identity.models import User
from lariba.identity.runtime import Runtime

router = APIRouter(tags=["auth"])

_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    **INVALID_INPUT,
}
_CREDENTIAL_PROBLEMS = {**_PROBLEMS, **INTERACTIVE_ONLY}


@router.post(
    "/v1/auth/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Create an account",
    responses={409: {"description": "E-mail already registered"}, **_PROBLEMS},
)
async def sign_up(body: SignupRequest, session: DbSession, runtime: Runtime, ctx: Context) -> User:
    return await service.sign_up(
        session,
        runtime,
        ctx=ctx,
        email=str(body.email),
        password=body.password,
        display_name=body.display_name,
    )


@router.post(
    "/v1/auth/token",
    response_model=TokenResponse,
    dependencies=[NoStore],
    summary="Log in (OAuth2 password grant)",
    responses={429: {"description": "Too many failed logins; see Retry-After"}, **_PROBLEMS},
)
async def token(
    form: Annotated[PasswordLoginForm, Depends()],
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> TokenResponse:
    return await service.log_in(
        session, runtime, ctx=ctx, email=form.username, password=form.password, otp=form.otp
    )


@router.post(
    "/v1/auth/refresh",
    response_model=TokenResponse,
    dependencies=[NoStore],
    summary="Trade a refresh token for a new token pair",
    responses=_PROBLEMS,
)
async def refresh(
    body: RefreshRequest, session: DbSession, runtime: Runtime, ctx: Context
) -> TokenResponse:
    return await service.refresh(session, runtime, ctx=ctx, token=body.refresh_token)


@router.post(
    "/v1/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End this session (or every session with `everywhere`)",
    responses=_CREDENTIAL_PROBLEMS,
)
async def log_out(
    principal: InteractivePrincipal,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> None:
    await service.log_out(
        session, runtime, ctx=ctx, principal=principal, everywhere=bool(body and body.everywhere)
    )


@router.get("/v1/me", response_model=UserOut, summary="Who am I", responses=_PROBLEMS)
async def me(principal: CurrentPrincipal, session: DbSession) -> User:
    user = await session.get(User, principal.user_id)
    assert user is not None
    return user


@router.patch(
    "/v1/me",
    response_model=UserOut,
    summary="Update my profile",
    responses=_CREDENTIAL_PROBLEMS,
)
async def update_me(
    body: UpdateMeRequest, principal: InteractivePrincipal, session: DbSession
) -> User:
    user = await session.get(User, principal.user_id)
    assert user is not None
    if "display_name" in body.model_fields_set:
        user.display_name = body.display_name
    await session.flush()
    await session.refresh(user)
    return user


@router.post(
    "/v1/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password (ends every session: log in again)",
    responses=_CREDENTIAL_PROBLEMS,
)
async def change_password(
    body: ChangePasswordRequest,
    principal: InteractivePrincipal,
    session: DbSession,
    runtime: Runtime,
    ctx: Context,
) -> None:
    await service.change_password(
        session,
        runtime,
        ctx=ctx,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
    )
