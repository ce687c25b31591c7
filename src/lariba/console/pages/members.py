"""A project's members and invitations, and accepting an invitation."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values
from lariba.console.rendering import InProject, ProjectPage, redirect, render
from lariba.console.session import SignedIn
from lariba.core.logging import register_secret_path
from lariba.core.settings import Settings

router = APIRouter()

# The invitation token is a secret: keep it out of logs, as the API does for its own path.
register_secret_path(r"^/invitations/(?P<secret>[^/?]+)$")

ASSIGNABLE_ROLES = [("admin", "admin"), ("member", "member"), ("viewer", "viewer")]
NOTICES = {
    "role": "The member's role was changed.",
    "removed": "The member was removed from the project.",
    "transferred": "Ownership was transferred; you are now an admin of the project.",
    "revoked": "The invitation was revoked.",
}


def invitation_link(request: Request, token: str) -> str:
    """Where the invitee accepts: the console's page, at the platform's public address."""
    settings: Settings = request.app.state.settings
    return f"{settings.base_url}/invitations/{token}"


async def _members(
    request: Request, page: ProjectPage, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    members = await page.api.get(
        page.path("/members"), limit=100, cursor=request.query_params.get("cursor")
    )
    invitations = (
        await page.api.get(page.path("/invitations"), limit=100)
        if page.can("admin")
        else {"items": []}
    )
    return render(
        request,
        "members/list.html",
        page=page,
        members=members,
        invitations=invitations,
        roles=ASSIGNABLE_ROLES,
        notice=NOTICES.get(request.query_params.get("notice", "")),
        status_code=status_code,
        **context,
    )


@router.get("/projects/{project_id}/members", response_class=HTMLResponse)
async def members(request: Request, page: InProject) -> Response:
    return await _members(request, page)


@router.post("/projects/{project_id}/members/invite")
async def invite(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    body = {"email": values.get("email", ""), "role": values.get("role", "member")}
    try:
        invitation = await page.api.post(page.path("/invitations"), body)
    except ApiProblem as problem:
        errors = problem.field_errors() or {"email": problem.detail}
        return await _members(request, page, status_code=problem.status, form=values, errors=errors)
    link = invitation_link(request, invitation["token"]) if invitation.get("token") else None
    return await _members(request, page, status_code=201, invited=invitation, invite_link=link)


def _done(page: ProjectPage, notice: str) -> str:
    return f"/projects/{page.id}/members?notice={notice}"


async def _change(
    request: Request, page: ProjectPage, call: Awaitable[Any], *, then: str
) -> Response:
    """Makes one change through the API, then goes to ``then`` (or shows why not)."""
    try:
        await call
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return await _members(
            request, page, status_code=problem.status, action_error=problem.detail
        )
    return redirect(then)


@router.post("/projects/{project_id}/members/{user_id}/role")
async def change_role(request: Request, page: InProject, user_id: uuid.UUID) -> Response:
    values = await form_values(request)
    call = page.api.patch(page.path(f"/members/{user_id}"), {"role": values.get("role", "")})
    return await _change(request, page, call, then=_done(page, "role"))


@router.post("/projects/{project_id}/members/{user_id}/remove")
async def remove(request: Request, page: InProject, user_id: uuid.UUID) -> Response:
    # Leaving the project: it is no longer the visitor's to look at.
    leaving = user_id == page.visitor.user_id
    call = page.api.delete(page.path(f"/members/{user_id}"))
    return await _change(
        request, page, call, then="/projects" if leaving else _done(page, "removed")
    )


@router.post("/projects/{project_id}/members/{user_id}/transfer")
async def transfer(request: Request, page: InProject, user_id: uuid.UUID) -> Response:
    call = page.api.post(page.path("/transfer-ownership"), {"user_id": str(user_id)})
    return await _change(request, page, call, then=_done(page, "transferred"))


@router.post("/projects/{project_id}/members/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request, page: InProject, invitation_id: uuid.UUID
) -> Response:
    call = page.api.delete(page.path(f"/invitations/{invitation_id}"))
    return await _change(request, page, call, then=_done(page, "revoked"))


@router.get("/invitations", response_class=HTMLResponse)
async def enter_invitation(request: Request, visitor: SignedIn, token: str = "") -> Response:
    """For an invitation that came by e-mail: the token pasted in, then its accept page."""
    if token.strip():
        return redirect(f"/invitations/{token.strip()}")
    return render(request, "members/enter_invitation.html", visitor=visitor)


@router.get("/invitations/{token}", response_class=HTMLResponse)
async def invitation(request: Request, visitor: SignedIn, token: str) -> Response:
    return render(request, "members/accept.html", visitor=visitor, token=token)


@router.post("/invitations/{token}")
async def accept_invitation(request: Request, visitor: SignedIn, token: str) -> Response:
    try:
        project = await visitor.api.post(f"/v1/invitations/{token}/accept")
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return render(
            request,
            "members/accept.html",
            visitor=visitor,
            token=token,
            problem=problem,
            status_code=problem.status,
        )
    return redirect(f"/projects/{project['id']}")
