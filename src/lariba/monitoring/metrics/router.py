"""GET /v1/projects/{project_id}/metrics (a series) and .../metrics/names (what exists)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from lariba.cloud.engine.router import PROBLEMS
from lariba.core.db import DbSession
from lariba.core.timestamps import ISO_8601
from lariba.identity.authz import ProjectViewer
from lariba.monitoring.metrics import service
from lariba.monitoring.metrics.definitions import Aggregate
from lariba.monitoring.metrics.schemas import MetricList, MetricOut, ResourceRef, SeriesOut

router = APIRouter(tags=["metrics"])


@router.get(
    "/v1/projects/{project_id}/metrics",
    response_model=SeriesOut,
    response_model_by_alias=True,
    summary="A resource's metric over time, one point per step",
    responses=PROBLEMS,
)
async def get_series(
    access: ProjectViewer,
    session: DbSession,
    resource: Annotated[uuid.UUID, Query(description="The resource's id.")],
    name: Annotated[
        str,
        Query(
            max_length=64,
            description="The metric (GET .../metrics/names lists them): cpu_percent, "
            "memory_bytes, network_in_bytes, network_out_bytes, storage_bytes, object_count, "
            "size_bytes, connections.",
        ),
    ],
    start: Annotated[
        datetime | None,
        ISO_8601,
        Query(
            alias="from",
            description="Start, inclusive (ISO 8601; UTC without an offset). "
            "Default: an hour before `to`.",
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        ISO_8601,
        Query(alias="to", description="End, exclusive. Default: now."),
    ] = None,
    step: Annotated[
        str | None,
        Query(
            max_length=16,
            # The rule parse_step applies (which answers `invalid_step`).
            json_schema_extra={"pattern": r"^\s*[1-9][0-9]{0,6}[smhd]\s*$"},
            description="Width of each point: `30s`, `5m`, `1h`, `1d`. At most 1,500 points. "
            "Default: the first of 1m, 5m, 15m, 1h, 6h, 1d, 7d giving at most 300 points.",
        ),
    ] = None,
    aggregate: Annotated[
        Aggregate | None,
        Query(
            description="avg, min, max, sum or count of each step's samples. Default: "
            "the metric's (`sum` for network bytes, `avg` otherwise)."
        ),
    ] = None,
) -> SeriesOut:
    series = await service.series(
        session,
        project_id=access.project.id,
        resource_id=resource,
        name=name,
        start=start,
        end=end,
        step=service.parse_step(step) if step is not None else None,
        aggregate=aggregate,
    )
    return SeriesOut.of(series)


@router.get(
    "/v1/projects/{project_id}/metrics/names",
    response_model=MetricList,
    summary="The metrics of each resource kind, or of one resource with its latest values",
    responses=PROBLEMS,
)
async def list_metrics(
    access: ProjectViewer,
    session: DbSession,
    resource: Annotated[
        uuid.UUID | None, Query(description="Only this resource's metrics, with latest values.")
    ] = None,
) -> MetricList:
    found, items = await service.available(
        session, project_id=access.project.id, resource_id=resource
    )
    return MetricList(
        resource=ResourceRef.of(found) if found is not None else None,
        items=[MetricOut.of(item) for item in items],
    )
