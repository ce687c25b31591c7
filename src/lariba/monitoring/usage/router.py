"""GET /v1/projects/{project_id}/usage, .../cost and .../cost/export (FOCUS CSV)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from lariba.cloud.engine.router import PROBLEMS
from lariba.cloud.engine.runtime import Cloud
from lariba.core.db import DbSession
from lariba.core.timestamps import ISO_8601
from lariba.identity.authz import ProjectViewer
from lariba.monitoring.usage import service
from lariba.monitoring.usage.repository import Dimension
from lariba.monitoring.usage.schemas import CostReport, UsageReport

router = APIRouter(tags=["usage and cost"])

From = Annotated[
    datetime | None,
    ISO_8601,
    Query(
        alias="from",
        description="Start, inclusive (ISO 8601; UTC without an offset). "
        "Default: the start of this UTC month.",
    ),
]
To = Annotated[
    datetime | None,
    ISO_8601,
    Query(alias="to", description="End, exclusive. Default and latest: now."),
]
GroupBy = Annotated[
    list[Dimension] | None,
    Query(description="Group by `day` (UTC), `resource`, `resource_kind` or `meter`; repeat it."),
]


@router.get(
    "/v1/projects/{project_id}/usage",
    response_model=UsageReport,
    response_model_by_alias=True,
    summary="What the project used, per meter and size",
    responses=PROBLEMS,
)
async def get_usage(
    access: ProjectViewer,
    session: DbSession,
    cloud: Cloud,
    start: From = None,
    end: To = None,
    group_by: GroupBy = None,
) -> UsageReport:
    period = await service.window(session, start=start, end=end)
    return await service.usage_report(
        session,
        catalog=cloud.catalog,
        project_id=access.project.id,
        period=period,
        group_by=group_by or [],
    )


@router.get(
    "/v1/projects/{project_id}/cost",
    response_model=CostReport,
    response_model_by_alias=True,
    summary="What the project cost, with this month's forecast",
    responses=PROBLEMS,
)
async def get_cost(
    access: ProjectViewer,
    session: DbSession,
    cloud: Cloud,
    start: From = None,
    end: To = None,
    group_by: GroupBy = None,
) -> CostReport:
    period = await service.window(session, start=start, end=end)
    return await service.cost_report(
        session,
        catalog=cloud.catalog,
        project_id=access.project.id,
        period=period,
        group_by=[Dimension.resource_kind] if group_by is None else group_by,
    )


@router.get(
    "/v1/projects/{project_id}/cost/export",
    summary="Usage and cost as CSV in FinOps FOCUS columns",
    response_class=StreamingResponse,
    responses={**PROBLEMS, 200: {"content": {"text/csv": {}}, "description": "FOCUS CSV"}},
)
async def export_cost(
    access: ProjectViewer,
    session: DbSession,
    cloud: Cloud,
    start: From = None,
    end: To = None,
) -> StreamingResponse:
    period = await service.window(session, start=start, end=end)
    name = f"lariba-{access.project.id}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"
    return StreamingResponse(
        service.focus_csv(
            cloud.sessionmaker, catalog=cloud.catalog, project=access.project, period=period
        ),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
