"""Platform administration: users, projects and their quotas, and server errors.

Only platform admins get anywhere here: every page starts with an admin-only API call,
whose 403 is the page's answer to anyone else.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values, number
from lariba.console.rendering import redirect, render
from lariba.console.session import SignedIn, Visitor

router = APIRouter()

# The changes an admin makes to an account, as the API's PATCH body.
USER_CHANGES: dict[str, dict[str, bool]] = {
    "disable": {"is_active": False},
    "enable": {"is_active": True},
    "grant-admin": {"is_platform_admin": True},
    "revoke-admin": {"is_platform_admin": False},
}
NOTICES = {
    "disable": "The account was disabled and its sessions ended.",
    "enable": "The account was enabled.",
    "grant-admin": "The account is now a platform admin.",
    "revoke-admin": "The account is no longer a platform admin.",
}
# The quotas an admin sets (the API's QuotaUpdate), with what the form says about each.
QUOTAS = [
    ("instances", "Instances", "Number of instances, 0-100000."),
    ("vcpus", "vCPUs", "Sum of the instances' vCPUs, 0-1000000."),
    ("buckets", "Buckets", "Number of buckets, 0-100000."),
    ("storage_bytes", "Bucket storage (bytes)", "Bytes stored in buckets; 10737418240 is 10 GiB."),
    ("databases", "Databases", "Number of databases, 0-100000."),
    ("database_storage_gb", "Database storage (GB)", "Sum of the databases' disks, in GB."),
]


async def _users(
    request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    email = request.query_params.get("email", "")
    users = await visitor.api.get(
        "/v1/admin/users", email=email, limit=50, cursor=request.query_params.get("cursor")
    )
    return render(
        request,
        "admin/users.html",
        visitor=visitor,
        users=users,
        email=email,
        notice=NOTICES.get(request.query_params.get("notice", "")),
        status_code=status_code,
        **context,
    )


@router.get("/admin", response_class=HTMLResponse)
async def users(request: Request, visitor: SignedIn) -> Response:
    return await _users(request, visitor)


@router.post("/admin/users/{user_id}/{change}")
async def change_user(
    request: Request, visitor: SignedIn, user_id: uuid.UUID, change: str
) -> Response:
    if change not in USER_CHANGES:
        raise ApiProblem(status=404, code="not_found", detail=f"No change '{change}'.")
    try:
        await visitor.api.patch(f"/v1/admin/users/{user_id}", USER_CHANGES[change])
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        return await _users(
            request, visitor, status_code=problem.status, action_error=problem.detail
        )
    return redirect(f"/admin?notice={change}")


@router.get("/admin/projects", response_class=HTMLResponse)
async def projects(request: Request, visitor: SignedIn, cursor: str | None = None) -> Response:
    listing = await visitor.api.get("/v1/admin/projects", limit=50, cursor=cursor)
    return render(request, "admin/projects.html", visitor=visitor, listing=listing)


async def _admin_project(visitor: Visitor, project_id: uuid.UUID) -> dict[str, Any]:
    """The project as the admin list shows it (the API has no single-project admin view)."""
    cursor = None
    while True:
        listing = await visitor.api.get("/v1/admin/projects", limit=200, cursor=cursor)
        for project in listing["items"]:
            if project["id"] == str(project_id):
                return dict(project)
        cursor = listing.get("next_cursor")
        if not cursor:
            raise ApiProblem(
                status=404, code="project_not_found", detail=f"Project {project_id} not found."
            )


async def _current_quotas(visitor: Visitor, project_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The project's quotas, when the admin may read them: the API shows them to the
    project's members only (None for anyone else)."""
    try:
        return list((await visitor.api.get(f"/v1/projects/{project_id}/quotas"))["items"])
    except ApiProblem as problem:
        if problem.status != 404:
            raise
        return None


def _quota_page(
    request: Request,
    visitor: Visitor,
    project: dict[str, Any],
    quotas: list[dict[str, Any]] | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return render(
        request,
        "admin/quotas.html",
        visitor=visitor,
        project=project,
        quotas={q["name"]: q for q in quotas} if quotas is not None else None,
        fields=QUOTAS,
        status_code=status_code,
        **context,
    )


@router.get("/admin/projects/{project_id}/quotas", response_class=HTMLResponse)
async def quotas(request: Request, visitor: SignedIn, project_id: uuid.UUID) -> Response:
    project = await _admin_project(visitor, project_id)
    return _quota_page(request, visitor, project, await _current_quotas(visitor, project_id))


@router.post("/admin/projects/{project_id}/quotas")
async def set_quotas(request: Request, visitor: SignedIn, project_id: uuid.UUID) -> Response:
    project = await _admin_project(visitor, project_id)
    values = await form_values(request)
    # Empty fields keep their limits; the API checks the numbers.
    body = {name: number(values[name]) for name, _, _ in QUOTAS if values.get(name, "").strip()}
    try:
        saved = await visitor.api.put(f"/v1/admin/projects/{project_id}/quotas", body)
    except ApiProblem as problem:
        return _quota_page(
            request,
            visitor,
            project,
            await _current_quotas(visitor, project_id),
            status_code=problem.status,
            form=values,
            errors=problem.field_errors() or {"form": problem.detail},
        )
    return _quota_page(request, visitor, project, saved["items"], saved=True)


@router.get("/admin/errors", response_class=HTMLResponse)
async def server_errors(
    request: Request, visitor: SignedIn, request_id: str = "", cursor: str | None = None
) -> Response:
    listing = await visitor.api.get(
        "/v1/admin/errors", request_id=request_id.strip(), limit=25, cursor=cursor
    )
    return render(
        request, "admin/errors.html", visitor=visitor, listing=listing, request_id=request_id
    )
