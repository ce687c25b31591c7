"""Webhooks: the list, the create form, and a webhook's page with its delivery log,
replays, its settings and its signing secret (shown once, when made or rotated)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values
from lariba.console.rendering import InProject, ProjectPage, redirect, render
from lariba.monitoring.webhooks.schemas import EVENT_FAMILIES, EVENT_TYPES

router = APIRouter()

# The event choices of the forms: everything, then each family and its types.
EVENT_CHOICES: list[tuple[str, str]] = [("*", "Every event")] + [
    choice
    for family in EVENT_FAMILIES
    for choice in [
        (f"{family}.*", f"Every {family} event"),
        *((t, t) for t in EVENT_TYPES if t.startswith(f"{family}.")),
    ]
]
DELIVERY_STATUSES = [(s, s) for s in ("pending", "succeeded", "failed")]


def _webhook_path(page: ProjectPage, webhook_id: uuid.UUID | None = None, suffix: str = "") -> str:
    return page.path(f"/webhooks/{webhook_id}{suffix}" if webhook_id else "/webhooks")


def _detail_url(page: ProjectPage, webhook_id: uuid.UUID | str) -> str:
    return f"/projects/{page.id}/webhooks/{webhook_id}"


async def _posted(request: Request) -> tuple[dict[str, str], list[str]]:
    """The form's fields, and its checked event types (a field given many times)."""
    values = await form_values(request)
    events = [e for e in (await request.form()).getlist("event_types") if isinstance(e, str)]
    return values, events


def _body(values: dict[str, str], events: list[str]) -> dict[str, Any]:
    return {
        "url": values.get("url", ""),
        "description": values.get("description", ""),
        "event_types": events,
    }


def _errors(problem: ApiProblem) -> dict[str, str]:
    return problem.field_errors() or {"form": problem.detail}


@router.get("/projects/{project_id}/webhooks", response_class=HTMLResponse)
async def webhooks(request: Request, page: InProject, cursor: str | None = None) -> Response:
    listing = await page.api.get(_webhook_path(page), cursor=cursor, limit=50)
    return render(request, "webhooks/list.html", page=page, listing=listing)


@router.get("/projects/{project_id}/webhooks/new", response_class=HTMLResponse)
async def new_webhook(request: Request, page: InProject) -> Response:
    return render(
        request,
        "webhooks/new.html",
        page=page,
        event_choices=EVENT_CHOICES,
        events=["resource.*", "alert.*"],
    )


@router.post("/projects/{project_id}/webhooks/new")
async def create_webhook(request: Request, page: InProject) -> Response:
    values, events = await _posted(request)
    try:
        webhook = await page.api.post(_webhook_path(page), _body(values, events))
    except ApiProblem as problem:
        return render(
            request,
            "webhooks/new.html",
            page=page,
            event_choices=EVENT_CHOICES,
            events=events,
            form=values,
            errors=_errors(problem),
            status_code=problem.status,
        )
    # The secret is in this answer only (never stored by the console): the page shows it
    # now, and its script points the address bar at the webhook's own page.
    return await _detail(
        request, page, webhook["id"], secret=webhook["secret"], created=True, status_code=201
    )


async def _detail(
    request: Request,
    page: ProjectPage,
    webhook_id: uuid.UUID,
    *,
    status: str | None = None,
    cursor: str | None = None,
    secret: str | None = None,
    created: bool = False,
    form: dict[str, str] | None = None,
    events: list[str] | None = None,
    errors: dict[str, str] | None = None,
    action_error: str | None = None,
    status_code: int = 200,
) -> Response:
    webhook = await page.api.get(_webhook_path(page, webhook_id))
    deliveries = await page.api.get(
        _webhook_path(page, webhook_id, "/deliveries"), status=status, cursor=cursor, limit=25
    )
    return render(
        request,
        "webhooks/detail.html",
        page=page,
        webhook=webhook,
        deliveries=deliveries,
        delivery_status=status or "",
        delivery_statuses=DELIVERY_STATUSES,
        event_choices=EVENT_CHOICES,
        events=webhook["event_types"] if events is None else events,
        form=form or {"url": webhook["url"], "description": webhook["description"]},
        errors=errors or {},
        secret=secret,
        created=created,
        action_error=action_error,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/webhooks/{webhook_id}", response_class=HTMLResponse)
async def webhook(
    request: Request,
    page: InProject,
    webhook_id: uuid.UUID,
    status: str | None = None,
    cursor: str | None = None,
) -> Response:
    return await _detail(request, page, webhook_id, status=status, cursor=cursor)


@router.post("/projects/{project_id}/webhooks/{webhook_id}/edit")
async def edit_webhook(request: Request, page: InProject, webhook_id: uuid.UUID) -> Response:
    values, events = await _posted(request)
    try:
        await page.api.patch(_webhook_path(page, webhook_id), _body(values, events))
    except ApiProblem as problem:
        if problem.status in (403, 404):
            raise
        return await _detail(
            request,
            page,
            webhook_id,
            form=values,
            events=events,
            errors=_errors(problem),
            status_code=problem.status,
        )
    return redirect(_detail_url(page, webhook_id))


@router.post("/projects/{project_id}/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(request: Request, page: InProject, webhook_id: uuid.UUID) -> Response:
    rotated = await page.api.post(_webhook_path(page, webhook_id, "/rotate-secret"))
    return await _detail(request, page, webhook_id, secret=rotated["secret"])


@router.post("/projects/{project_id}/webhooks/{webhook_id}/{action}")
async def act(request: Request, page: InProject, webhook_id: uuid.UUID, action: str) -> Response:
    if action == "delete":
        await page.api.delete(_webhook_path(page, webhook_id))
        return redirect(f"/projects/{page.id}/webhooks")
    if action not in ("enable", "disable"):
        raise ApiProblem(status=404, code="not_found", detail=f"No action '{action}'.")
    await page.api.patch(_webhook_path(page, webhook_id), {"enabled": action == "enable"})
    return redirect(_detail_url(page, webhook_id))


@router.post("/projects/{project_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/replay")
async def replay(
    request: Request, page: InProject, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> Response:
    try:
        await page.api.post(_webhook_path(page, webhook_id, f"/deliveries/{delivery_id}/replay"))
    except ApiProblem as problem:
        if problem.status in (403, 404):
            raise
        return await _detail(
            request, page, webhook_id, action_error=problem.detail, status_code=problem.status
        )
    return redirect(_detail_url(page, webhook_id))
