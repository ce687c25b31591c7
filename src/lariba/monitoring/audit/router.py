"""HTTP endpoints of a project's audit log, activity feed and resource logs, and of the
platform's audit export and server errors (platform admins)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from lariba.core.db import DbSession
from lariba.core.pagination import Page, SequencePageParams
from lariba.core.responses import INVALID_INPUT, UNAUTHENTICATED
from lariba.core.timestamps import ISO_8601
from lariba.identity.admin.router import AdminAuditFilter
from lariba.identity.admin.schemas import AuditEventOut
from lariba.identity.audit import AuditFilter
from lariba.identity.authn import PlatformAdmin
from lariba.identity.authz import ProjectAdmin, ProjectViewer
from lariba.monitoring.audit import activity, resource_logs, server_errors, service
from lariba.monitoring.audit.errors import InvalidQuery
from lariba.monitoring.audit.schemas import ActivityItemOut, LogEntryOut, ServerErrorOut
from lariba.monitoring.audit.timeline import TimelinePageParams

router = APIRouter()

_PROJECT_PROBLEMS: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    404: {"description": "No such project, or not yours (`project_not_found`)"},
    **INVALID_INPUT,
}
_ADMIN_ONLY: dict[int | str, dict[str, str]] = {
    **_PROJECT_PROBLEMS,
    403: {"description": "Needs the admin or owner role in the project (`insufficient_role`)"},
}
_PLATFORM_ADMIN_ONLY: dict[int | str, dict[str, str]] = {
    **UNAUTHENTICATED,
    403: {"description": "Not a platform admin (`platform_admin_required`)"},
    **INVALID_INPUT,
}
_NDJSON: dict[int | str, dict[str, object]] = {
    200: {
        "description": "One audit event (as in the list) per line, oldest first.",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }
}


Since = Annotated[
    AwareDatetime | None,
    ISO_8601,
    Query(alias="from", description="Events at or after (ISO 8601, with zone)."),
]
Until = Annotated[
    AwareDatetime | None,
    ISO_8601,
    Query(alias="to", description="Events before (ISO 8601, with zone)."),
]


def _window(since: datetime | None, until: datetime | None, *, names: tuple[str, str]) -> None:
    if since is not None and until is not None and since >= until:
        raise InvalidQuery(names[0], f"must be before {names[1]}")


async def project_audit_filter(
    since: Since = None,
    until: Until = None,
    actor: Annotated[
        str | None,
        Query(max_length=320, description="Who acted: a user or API key id, or an e-mail."),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            description="An action (instance.create), or a prefix ending in a dot (instance.).",
        ),
    ] = None,
    target_type: Annotated[
        str | None, Query(max_length=32, description="instance, bucket, database, member, ...")
    ] = None,
    target_id: Annotated[str | None, Query(max_length=64, description="What was acted on.")] = None,
    outcome: Annotated[
        Literal["success", "failure", "denied"] | None, Query(description="How it went.")
    ] = None,
) -> AuditFilter:
    """The filters of a project's audit log and its export."""
    _window(since, until, names=("from", "to"))
    actor_id: uuid.UUID | None = None
    actor_label: str | None = None
    if actor is not None:
        try:
            actor_id = uuid.UUID(actor)
        except ValueError:
            actor_label = actor.strip()
    return AuditFilter(
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        since=since,
        until=until,
    )


ProjectAuditFilter = Annotated[AuditFilter, Depends(project_audit_filter)]


def _ndjson(request: Request, *, where: AuditFilter, name: str) -> StreamingResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        service.export_audit(request.app.state.sessionmaker, where=where),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.jsonl"'},
    )


@router.get(
    "/v1/projects/{project_id}/audit",
    response_model=Page[AuditEventOut],
    summary="The project's audit log, newest first (project admins and owners)",
    tags=["audit"],
    responses=_ADMIN_ONLY,
)
async def list_project_audit(
    access: ProjectAdmin, session: DbSession, page: SequencePageParams, where: ProjectAuditFilter
) -> Page[AuditEventOut]:
    return await service.list_project_audit(
        session, project_id=access.project.id, page=page, where=where
    )


@router.get(
    "/v1/projects/{project_id}/audit/export",
    response_class=StreamingResponse,
    summary="Export the project's audit log as JSON lines, oldest first",
    tags=["audit"],
    responses={**_ADMIN_ONLY, **_NDJSON},
)
async def export_project_audit(
    access: ProjectAdmin, request: Request, where: ProjectAuditFilter
) -> StreamingResponse:
    project_id = access.project.id
    return _ndjson(
        request,
        where=replace(where, project_id=project_id),
        name=f"audit-{project_id}",
    )


@router.get(
    "/v1/admin/audit/export",
    response_class=StreamingResponse,
    summary="Export the audit trail of the whole platform as JSON lines, oldest first",
    tags=["admin"],
    responses={**_PLATFORM_ADMIN_ONLY, **_NDJSON},
)
async def export_platform_audit(
    admin: PlatformAdmin, request: Request, where: AdminAuditFilter
) -> StreamingResponse:
    return _ndjson(request, where=where, name="audit")


@router.get(
    "/v1/projects/{project_id}/activity",
    response_model=Page[ActivityItemOut],
    summary="What happened in the project, newest first: changes made and status changes",
    tags=["audit"],
    responses=_PROJECT_PROBLEMS,
)
async def list_activity(
    access: ProjectViewer, session: DbSession, page: TimelinePageParams
) -> Page[ActivityItemOut]:
    return await activity.list_activity(session, project_id=access.project.id, page=page)


@router.get(
    "/v1/projects/{project_id}/logs",
    response_model=Page[LogEntryOut],
    summary="A resource's log: its operations and events, oldest first",
    tags=["audit"],
    responses={
        **_PROJECT_PROBLEMS,
        404: {"description": "No such project or resource, or not yours"},
    },
)
async def resource_log(
    access: ProjectViewer,
    session: DbSession,
    page: TimelinePageParams,
    resource_id: Annotated[
        uuid.UUID, Query(description="The instance, bucket or database (any kind).")
    ],
) -> Page[LogEntryOut]:
    return await resource_logs.resource_log(
        session, project_id=access.project.id, resource_id=resource_id, page=page
    )


@router.get(
    "/v1/admin/errors",
    response_model=Page[ServerErrorOut],
    summary="Unhandled server errors, newest first (platform admins)",
    tags=["admin"],
    responses=_PLATFORM_ADMIN_ONLY,
)
async def list_server_errors(
    admin: PlatformAdmin,
    session: DbSession,
    page: SequencePageParams,
    request_id: Annotated[
        str | None, Query(max_length=128, description="The request id a caller quoted.")
    ] = None,
) -> Page[ServerErrorOut]:
    return await server_errors.list_server_errors(session, page=page, request_id=request_id)
