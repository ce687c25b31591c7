"""HTTP endpoints of a project's alert rules and their history: viewers read, admins and
owners write."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from lariba.cloud.engine.runtime import Cloud
from lariba.core.db import DbSession
from lariba.core.pagination import Page, PageParams, SequencePageParams
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED
from lariba.identity.audit import Context, RequestContext
from lariba.identity.authz import ProjectAccess, ProjectAdmin, ProjectViewer
from lariba.monitoring.alerts import service
from lariba.monitoring.alerts.schemas import (
    AlertRuleCreate,
    AlertRuleOut,
    AlertRuleUpdate,
    AlertStateChangeOut,
)

router = APIRouter(prefix="/v1/projects/{project_id}/alerts", tags=["alerts"])

AlertId = Annotated[uuid.UUID, Path(description="Alert rule id.")]

_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    404: {"description": "No such project or alert rule, or not yours"},
}
_WRITE_PROBLEMS: dict[int | str, dict[str, str]] = {
    **_PROBLEMS,
    **INVALID_INPUT,
    403: {"description": "Below the admin role in the project (`insufficient_role`)"},
    404: {
        "description": "No such project, alert rule or resource, or not yours "
        "(`resource_not_found` for the source's resource)"
    },
    409: {"description": "`alert_name_taken`, or `alert_limit_reached` (100 per project)"},
    422: {
        "description": "Invalid input; `errors` names each field: `unknown_metric`, "
        "`window_required`, `window_not_used`, `window_out_of_range`, `email_not_configured`"
    },
}


def _caller(access: ProjectAccess, ctx: RequestContext) -> service.Caller:
    return service.Caller(ctx=ctx, actor=access.principal.actor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AlertRuleOut,
    summary="Create an alert rule",
    responses=_WRITE_PROBLEMS,
)
async def create_alert(
    body: AlertRuleCreate, access: ProjectAdmin, session: DbSession, cloud: Cloud, ctx: Context
) -> AlertRuleOut:
    return await service.create_rule(
        session,
        settings=cloud.settings,
        caller=_caller(access, ctx),
        project_id=access.project.id,
        body=body,
    )


@router.get(
    "",
    response_model=Page[AlertRuleOut],
    summary="List the project's alert rules, oldest first",
    responses=_PROBLEMS,
)
async def list_alerts(
    access: ProjectViewer, session: DbSession, page: PageParams
) -> Page[AlertRuleOut]:
    return await service.list_rules(session, project_id=access.project.id, page=page)


@router.get(
    "/{alert_id}",
    response_model=AlertRuleOut,
    summary="Get an alert rule and its state",
    responses=_PROBLEMS,
)
async def get_alert(access: ProjectViewer, session: DbSession, alert_id: AlertId) -> AlertRuleOut:
    return await service.get_rule(session, project_id=access.project.id, rule_id=alert_id)


@router.patch(
    "/{alert_id}",
    response_model=AlertRuleOut,
    summary="Change an alert rule (only the fields sent)",
    responses=_WRITE_PROBLEMS,
)
async def update_alert(
    body: AlertRuleUpdate,
    access: ProjectAdmin,
    session: DbSession,
    cloud: Cloud,
    ctx: Context,
    alert_id: AlertId,
) -> AlertRuleOut:
    return await service.update_rule(
        session,
        settings=cloud.settings,
        caller=_caller(access, ctx),
        project_id=access.project.id,
        rule_id=alert_id,
        body=body,
    )


@router.delete(
    "/{alert_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an alert rule and its history",
    responses=_WRITE_PROBLEMS,
)
async def delete_alert(
    access: ProjectAdmin, session: DbSession, ctx: Context, alert_id: AlertId
) -> Response:
    await service.delete_rule(
        session, caller=_caller(access, ctx), project_id=access.project.id, rule_id=alert_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{alert_id}/history",
    response_model=Page[AlertStateChangeOut],
    summary="The rule's state changes, newest first",
    responses=_PROBLEMS,
)
async def alert_history(
    access: ProjectViewer, session: DbSession, page: SequencePageParams, alert_id: AlertId
) -> Page[AlertStateChangeOut]:
    return await service.list_history(
        session, project_id=access.project.id, rule_id=alert_id, page=page
    )
