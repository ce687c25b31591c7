"""Alert rules: the list with each rule's state, the create form (a metric or the
project's cost), and a rule's page with its history and actions."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values, optional
from lariba.console.rendering import InProject, ProjectPage, redirect, render

router = APIRouter()

RESOURCE_KINDS = ("instances", "buckets", "databases")
COMPARISONS = (">", ">=", "<", "<=")
AGGREGATES = ("avg", "min", "max", "sum", "count")
# The create form's inputs, by the names the page gives them.
FORM_FIELDS = frozenset(
    {
        "name",
        "resource_id",
        "metric",
        "aggregate",
        "measure",
        "comparison",
        "threshold",
        "window",
        "emails",
    }
)
MEASURES = (
    ("month_to_date", "This month's cost so far"),
    ("end_of_month_forecast", "Forecast for the end of the month"),
    ("window", "Cost over the window"),
)


def _alerts_path(page: ProjectPage, alert_id: uuid.UUID | None = None, suffix: str = "") -> str:
    return page.path(f"/alerts/{alert_id}{suffix}" if alert_id else "/alerts")


async def resources(page: ProjectPage) -> list[dict[str, str]]:
    """The project's instances, buckets and databases, for choosing a rule's resource and
    for naming it in a rule's description."""
    found: list[dict[str, str]] = []
    for kind in RESOURCE_KINDS:
        listing = await page.api.get(page.path(f"/{kind}"), limit=100)
        found += [
            {"id": str(item["id"]), "name": item["name"], "kind": kind.removesuffix("s")}
            for item in listing["items"]
        ]
    return found


def rule_body(values: dict[str, str]) -> dict[str, Any]:
    """The API's rule from the form: a metric source or a cost source, and only the
    optional fields that were filled in."""
    if values.get("kind") == "cost":
        source: dict[str, Any] = {"type": "cost", "measure": values.get("measure", "")}
    else:
        source = {"type": "metric", **optional(values, "resource_id", "aggregate")}
        source["metric"] = values.get("metric", "")
    emails = [e for e in re.split(r"[\s,;]+", values.get("emails", "")) if e]
    return {
        "name": values.get("name", ""),
        "source": source,
        "comparison": values.get("comparison", ""),
        "threshold": values.get("threshold", ""),
        "emails": emails,
        **optional(values, "window"),
    }


def form_errors(problem: ApiProblem) -> dict[str, str]:
    """The API's errors keyed by this form's fields: ``source.metric.resource_id`` (the
    schema's) and ``source.metric`` (the service's check) are the form's ``resource_id``
    and ``metric``; what belongs to no field is the form's."""
    errors: dict[str, str] = {}
    for error in problem.errors:
        name = error.get("field", "")
        message = error.get("message", "is not valid")
        field = name.rsplit(".", 1)[-1] if name.startswith("source.") else name.split(".")[0]
        if field not in FORM_FIELDS:
            field, message = "form", f"{name}: {message}"
        errors.setdefault(field, message)
    if problem.code == "resource_not_found":
        errors.setdefault("resource_id", problem.detail)
    return errors or {"form": problem.detail}


async def _form_page(
    request: Request,
    page: ProjectPage,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    metrics = (await page.api.get(page.path("/metrics/names")))["items"]
    return render(
        request,
        "alerts/new.html",
        page=page,
        resource_options=[(r["id"], f"{r['kind']} · {r['name']}") for r in await resources(page)],
        metric_options=[(m["name"], f"{m['name']} ({m['kind']}, {m['unit']})") for m in metrics],
        comparisons=[(c, c) for c in COMPARISONS],
        aggregates=[(a, a) for a in AGGREGATES],
        measures=MEASURES,
        form=form or {"kind": "metric", "comparison": ">"},
        errors=errors or {},
        status_code=status_code,
    )


@router.get("/projects/{project_id}/alerts", response_class=HTMLResponse)
async def alerts(request: Request, page: InProject, cursor: str | None = None) -> Response:
    listing = await page.api.get(_alerts_path(page), cursor=cursor, limit=50)
    names = {r["id"]: r for r in await resources(page)}
    return render(request, "alerts/list.html", page=page, listing=listing, resources=names)


@router.get("/projects/{project_id}/alerts/new", response_class=HTMLResponse)
async def new_alert(request: Request, page: InProject) -> Response:
    return await _form_page(request, page)


@router.post("/projects/{project_id}/alerts/new")
async def create_alert(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    try:
        rule = await page.api.post(_alerts_path(page), rule_body(values))
    except ApiProblem as problem:
        return await _form_page(
            request, page, form=values, errors=form_errors(problem), status_code=problem.status
        )
    return redirect(f"/projects/{page.id}/alerts/{rule['id']}")


async def _detail(
    request: Request,
    page: ProjectPage,
    alert_id: uuid.UUID,
    *,
    cursor: str | None = None,
    action_error: str | None = None,
    status_code: int = 200,
) -> Response:
    rule = await page.api.get(_alerts_path(page, alert_id))
    history = await page.api.get(_alerts_path(page, alert_id, "/history"), cursor=cursor, limit=50)
    names = {r["id"]: r for r in await resources(page)}
    return render(
        request,
        "alerts/detail.html",
        page=page,
        rule=rule,
        history=history,
        resources=names,
        action_error=action_error,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/alerts/{alert_id}", response_class=HTMLResponse)
async def alert(
    request: Request, page: InProject, alert_id: uuid.UUID, cursor: str | None = None
) -> Response:
    return await _detail(request, page, alert_id, cursor=cursor)


@router.post("/projects/{project_id}/alerts/{alert_id}/{action}")
async def act(request: Request, page: InProject, alert_id: uuid.UUID, action: str) -> Response:
    try:
        if action == "delete":
            await page.api.delete(_alerts_path(page, alert_id))
            return redirect(f"/projects/{page.id}/alerts")
        if action not in ("enable", "disable"):
            raise ApiProblem(status=404, code="not_found", detail=f"No action '{action}'.")
        await page.api.patch(_alerts_path(page, alert_id), {"enabled": action == "enable"})
    except ApiProblem as problem:
        if problem.status in (403, 404):
            raise
        return await _detail(
            request, page, alert_id, action_error=problem.detail, status_code=problem.status
        )
    return redirect(f"/projects/{page.id}/alerts/{alert_id}")
