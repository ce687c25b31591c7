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


@router.get("/projects/{project_id}/settings", response_class=HTMLResponse)
async def settings(request: Request, page: InProject) -> Response:
    return render(request, "projects/settings.html", page=page, form=page.project)


@router.post("/projects/{project_id}/settings")
async def update_project(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    body = {"name": values.get("name", ""), "description": values.get("description") or None}
    try:
        await page.api.patch(page.path(), body)
    except ApiProblem as problem:
        return render(
            request,
            "projects/settings.html",
            page=page,
            form=values,
            errors=problem.field_errors() or {"form": problem.detail},
            status_code=problem.status,
        )
    return redirect(f"/projects/{page.id}/settings")


@router.post("/projects/{project_id}/delete")
async def delete_project(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    if values.get("confirm_name") != page.project["name"]:
        return render(
            request,
            "projects/settings.html",
            page=page,
            form=page.project,
            errors={"confirm_name": "Type the project's name exactly to delete it."},
            status_code=422,
        )
    try:
        await page.api.delete(page.path())
    except ApiProblem as problem:
        if problem.status in (403, 404):
            raise
        return render(
            request,
            "projects/settings.html",
            page=page,
            form=page.project,
            errors={"confirm_name": problem.detail},
            status_code=problem.status,
        )
    return redirect("/projects")
