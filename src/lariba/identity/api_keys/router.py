"""HTTP endpoints of the caller's API keys (``/v1/me/api-keys``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, status

from lariba.core.db import DbSession
from lariba.core.pagination import Page, PageParams
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED, NoStore
from lariba.identity.api_keys import service
from lariba.identity.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from lariba.identity.audit import Context
from lariba.identity.authn import InteractivePrincipal
from lariba.identity.models import ApiKey, Role

router = APIRouter(prefix="/v1/me/api-keys", tags=["api-keys"])

ApiKeyId = Annotated[uuid.UUID, Path(description="API key id.")]

_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    403: {"description": "Called with an API key: `interactive_login_required`"},
}
_NOT_FOUND: dict[int | str, dict[str, str]] = {
    404: {"description": "No such key of yours: `api_key_not_found`"}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    dependencies=[NoStore],
    summary="Create an API key (the key is shown only in this response)",
    responses={
        404: {"description": "`project_id` is not a project of yours: `project_not_found`"},
        409: {"description": "Too many active keys: `api_key_limit_reached`"},
        **INVALID_INPUT,
        **_PROBLEMS,
    },
)
async def create_api_key(
    body: ApiKeyCreate,
    principal: InteractivePrincipal,
    session: DbSession,
    ctx: Context,
) -> ApiKeyCreated:
    return await service.create_api_key(
        session,
        ctx=ctx,
        principal=principal,
        name=body.name,
        project_id=body.project_id,
        role=Role(body.role) if body.role else None,
        expires_at=body.expires_at,
    )


@router.get(
    "",
    response_model=Page[ApiKeyOut],
    summary="List my API keys (revoked ones included, with `revoked_at`)",
    responses=_PROBLEMS,
)
async def list_api_keys(
    principal: InteractivePrincipal, session: DbSession, page: PageParams
) -> Page[ApiKeyOut]:
    return await service.list_api_keys(session, principal=principal, page=page)


@router.get(
    "/{api_key_id}",
    response_model=ApiKeyOut,
    summary="Show one of my API keys",
    responses={**_PROBLEMS, **_NOT_FOUND},
)
async def get_api_key(
    api_key_id: ApiKeyId, principal: InteractivePrincipal, session: DbSession
) -> ApiKey:
    return await service.get_api_key(session, principal=principal, api_key_id=api_key_id)


@router.delete(
    "/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key (it stops working at once)",
    responses={**_PROBLEMS, **_NOT_FOUND},
)
async def revoke_api_key(
    api_key_id: ApiKeyId, principal: InteractivePrincipal, session: DbSession, ctx: Context
) -> None:
    await service.revoke_api_key(session, ctx=ctx, principal=principal, api_key_id=api_key_id)
