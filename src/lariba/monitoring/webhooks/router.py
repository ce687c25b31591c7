"""HTTP endpoints of a project's webhooks and their delivery log (project owners and admins)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status

from lariba.cloud.engine.runtime import Cloud, Jobs
from lariba.core.db import DbSession
from lariba.core.pagination import Page, PageParams, SequencePageParams
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED, NoStore
from lariba.core.secrets import SecretBox
from lariba.identity.audit import Context, RequestContext
from lariba.identity.authz import ProjectAccess, ProjectAdmin
from lariba.monitoring.webhooks import service
from lariba.monitoring.webhooks.schemas import (
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(prefix="/v1/projects/{project_id}/webhooks", tags=["webhooks"])

WebhookId = Annotated[uuid.UUID, Path(description="Webhook id.")]
DeliveryId = Annotated[uuid.UUID, Path(description="Delivery id (`Lariba-Webhook-Id`).")]

_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    403: {"description": "Below the admin role in the project (`insufficient_role`)"},
    404: {"description": "No such project or webhook, or not yours"},
}
_INPUT_PROBLEMS: dict[int | str, dict[str, str]] = {
    **_PROBLEMS,
    **INVALID_INPUT,
    422: {
        "description": "Invalid input; `errors` names each field. A URL that is not https, "
        "carries credentials or leads to a private address: `invalid_webhook_url`, "
        "`webhook_address_not_allowed`, `webhook_host_unresolvable`"
    },
}


async def _secret_box(request: Request) -> SecretBox:
    return SecretBox(request.app.state.settings.master_key)


Box = Annotated[SecretBox, Depends(_secret_box)]


def _caller(access: ProjectAccess, ctx: RequestContext) -> service.Caller:
    return service.Caller(ctx=ctx, actor=access.principal.actor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    dependencies=[NoStore],
    summary="Create a webhook (its signing secret is shown only in this response)",
    responses={
        **_INPUT_PROBLEMS,
        409: {"description": "The project has the most webhooks allowed (`webhook_limit_reached`)"},
    },
)
async def create_webhook(
    body: WebhookCreate,
    access: ProjectAdmin,
    session: DbSession,
    cloud: Cloud,
    box: Box,
    ctx: Context,
) -> WebhookWithSecret:
    return await service.create_webhook(
        session,
        settings=cloud.settings,
        box=box,
        caller=_caller(access, ctx),
        project_id=access.project.id,
        body=body,
    )


@router.get(
    "",
    response_model=Page[WebhookOut],
    summary="List the project's webhooks, oldest first",
    responses=_PROBLEMS,
)
async def list_webhooks(
    access: ProjectAdmin, session: DbSession, page: PageParams
) -> Page[WebhookOut]:
    return await service.list_webhooks(session, project_id=access.project.id, page=page)


@router.get(
    "/{webhook_id}", response_model=WebhookOut, summary="Get a webhook", responses=_PROBLEMS
)
async def get_webhook(
    access: ProjectAdmin, session: DbSession, webhook_id: WebhookId
) -> WebhookOut:
    return await service.get_webhook(session, project_id=access.project.id, webhook_id=webhook_id)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Change a webhook (only the fields sent); disabling it fails its pending deliveries",
    responses=_INPUT_PROBLEMS,
)
async def update_webhook(
    body: WebhookUpdate,
    access: ProjectAdmin,
    session: DbSession,
    cloud: Cloud,
    ctx: Context,
    webhook_id: WebhookId,
) -> WebhookOut:
    return await service.update_webhook(
        session,
        settings=cloud.settings,
        caller=_caller(access, ctx),
        project_id=access.project.id,
        webhook_id=webhook_id,
        body=body,
    )


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook and its delivery log",
    responses=_PROBLEMS,
)
async def delete_webhook(
    access: ProjectAdmin, session: DbSession, ctx: Context, webhook_id: WebhookId
) -> None:
    await service.delete_webhook(
        session, caller=_caller(access, ctx), project_id=access.project.id, webhook_id=webhook_id
    )


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    dependencies=[NoStore],
    summary="Replace the signing secret (the old one stops working at once)",
    responses=_PROBLEMS,
)
async def rotate_secret(
    access: ProjectAdmin, session: DbSession, box: Box, ctx: Context, webhook_id: WebhookId
) -> WebhookWithSecret:
    return await service.rotate_secret(
        session,
        box=box,
        caller=_caller(access, ctx),
        project_id=access.project.id,
        webhook_id=webhook_id,
    )


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="The webhook's delivery log, newest first, with every attempt",
    responses=_PROBLEMS,
)
async def list_deliveries(
    access: ProjectAdmin,
    session: DbSession,
    page: SequencePageParams,
    webhook_id: WebhookId,
    status: Annotated[
        Literal["pending", "succeeded", "failed"] | None,
        Query(description="Only deliveries in this status."),
    ] = None,
) -> Page[DeliveryOut]:
    return await service.list_deliveries(
        session, project_id=access.project.id, webhook_id=webhook_id, page=page, status=status
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    summary="Send a delivery again: same payload and id, a new series of attempts",
    responses={
        **_PROBLEMS,
        409: {
            "description": "Still being sent (`delivery_in_progress`) or the webhook is "
            "disabled (`webhook_disabled`)"
        },
    },
)
async def replay_delivery(
    access: ProjectAdmin,
    session: DbSession,
    jobs: Jobs,
    ctx: Context,
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
) -> DeliveryOut:
    return await service.replay_delivery(
        session,
        jobs=jobs,
        caller=_caller(access, ctx),
        project_id=access.project.id,
        webhook_id=webhook_id,
        delivery_id=delivery_id,
    )
