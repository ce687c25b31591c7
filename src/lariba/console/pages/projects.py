"""The project list, creating a project, and a project's overview."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values, optional
from lariba.console.rendering import InProject, redirect, render
from lariba.console.session import SignedIn

router = APIRouter()


@router.get("/projects", response_class=HTMLResponse)
async def projects(request: Request, visitor: SignedIn, cursor: str | None = None) -> Response:
    listing = await visitor.api.get("/v1/projects", limit=50, cursor=cursor)
    return render(request, "projects/list.html", visitor=visitor, listing=listing)


@router.post("/projects")
async def create_project(request: Request, visitor: SignedIn) -> Response:
    values = await form_values(request)
    try:
        project = await visitor.api.post(
            "/v1/projects", {"name": values.get("name", ""), **optional(values, "description")}
        )
    except ApiProblem as problem:
        listing = await visitor.api.get("/v1/projects", limit=50)
        return render(
            request,
            "projects/list.html",
            visitor=visitor,
            listing=listing,
            status_code=problem.status,
            form=values,
            errors=problem.field_errors() or {"name": problem.detail},
        )
    return redirect(f"/projects/{project['id']}")


@router.get("/projects/switch")
async def switch(visitor: SignedIn, project_id: uuid.UUID) -> Response:
    """The project switcher without JavaScript."""
    return redirect(f"/projects/{project_id}")


@router.get("/projects/{project_id}", response_class=HTMLResponse)
async def overview(request: Request, page: InProject) -> Response:
    quotas = await page.api.get(page.path("/quotas"))
    activity = await page.api.get(page.path("/activity"), limit=10)
    return render(
        request,
        "projects/overview.html",
        page=page,
        quotas=quotas,
        activity=activity,
    )
