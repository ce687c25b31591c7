"""GET, PUT and DELETE /v1/projects/{project_id}/budget."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from lariba.cloud.engine.router import PROBLEMS
from lariba.cloud.engine.runtime import Cloud
from lariba.core.db import DbSession
from lariba.identity.audit import Context
from lariba.identity.authz import ProjectAdmin, ProjectViewer
from lariba.monitoring.budgets import service
from lariba.monitoring.budgets.schemas import BudgetIn, BudgetOut

router = APIRouter(tags=["usage and cost"])

_PATH = "/v1/projects/{project_id}/budget"


@router.get(
    _PATH,
    response_model=BudgetOut,
    summary="The project's budget and where it stands",
    responses=PROBLEMS,
)
async def get_budget(access: ProjectViewer, session: DbSession, cloud: Cloud) -> BudgetOut:
    return await service.get_budget(session, catalog=cloud.catalog, project_id=access.project.id)


@router.put(
    _PATH, response_model=BudgetOut, summary="Set the project's monthly budget", responses=PROBLEMS
)
async def set_budget(
    body: BudgetIn, access: ProjectAdmin, session: DbSession, cloud: Cloud, ctx: Context
) -> BudgetOut:
    return await service.set_budget(
        session, catalog=cloud.catalog, access=access, ctx=ctx, body=body
    )


@router.delete(
    _PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the project's budget",
    responses=PROBLEMS,
)
async def delete_budget(access: ProjectAdmin, session: DbSession, ctx: Context) -> Response:
    await service.delete_budget(session, access=access, ctx=ctx)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
