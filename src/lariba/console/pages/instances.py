"""Instances: the list, the create form, the detail page with its actions and live
status, and the console output."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values, labels_from_text, optional
from lariba.console.rendering import InProject, ProjectPage, redirect, render

router = APIRouter()

# The actions an instance offers in each status (the API decides; these are the buttons).
ACTIONS: dict[str, tuple[str, ...]] = {"running": ("stop", "reboot"), "stopped": ("start",)}
_RULE = re.compile(
    r"^(?P<protocol>tcp|udp|icmp|all)(?:\s+(?P<low>\d+)(?:-(?P<high>\d+))?)?\s+(?P<cidr>\S+)$"
)


def firewall_from_text(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """Rules written one per line as ``tcp 22 0.0.0.0/0`` or ``tcp 8000-8100 10.0.0.0/8``;
    the rules, or the message for the first line that is not one."""
    rules: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _RULE.match(line.strip().lower())
        if match is None:
            return [], f"Line {number}: write a rule as 'tcp 22 0.0.0.0/0' or 'udp 53 10.0.0.0/8'."
        rule: dict[str, Any] = {"protocol": match["protocol"], "cidr": match["cidr"]}
        if match["low"]:
            rule["port_from"] = int(match["low"])
            rule["port_to"] = int(match["high"] or match["low"])
        rules.append(rule)
    return rules, None


async def _catalog(page: ProjectPage) -> dict[str, Any]:
    return {
        kind: (await page.api.get(f"/v1/catalog/{kind}"))["items"]
        for kind in ("regions", "sizes", "images")
    }


def _instance_path(page: ProjectPage, instance_id: uuid.UUID, suffix: str = "") -> str:
    return page.path(f"/instances/{instance_id}{suffix}")


@router.get("/projects/{project_id}/instances", response_class=HTMLResponse)
async def instances(
    request: Request,
    page: InProject,
    status: str | None = None,
    label: str | None = None,
    cursor: str | None = None,
) -> Response:
    filters = {"status": status or "", "label": label or ""}
    try:
        listing = await page.api.get(
            page.path("/instances"), status=status, label=label, cursor=cursor, limit=25
        )
        errors: dict[str, str] = {}
    except ApiProblem as problem:
        if problem.status != 422:
            raise
        listing, errors = {"items": [], "next_cursor": None}, problem.field_errors()
    return render(
        request,
        "instances/list.html",
        page=page,
        listing=listing,
        filters=filters,
        errors=errors,
        status_code=422 if errors else 200,
    )


@router.get("/projects/{project_id}/instances/new", response_class=HTMLResponse)
async def new_instance(request: Request, page: InProject) -> Response:
    return render(request, "instances/new.html", page=page, catalog=await _catalog(page))


@router.post("/projects/{project_id}/instances/new")
async def create_instance(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    rules, rule_error = firewall_from_text(values.get("firewall", ""))
    body: dict[str, Any] = {
        "name": values.get("name", ""),
        "size": values.get("size", ""),
        "image": values.get("image", ""),
        "firewall": rules,
        "public_ip": values.get("public_ip") == "on",
        "labels": labels_from_text(values.get("labels", "")),
        **optional(values, "region", "user_data", "ssh_public_key"),
    }
    try:
        if rule_error:
            raise ApiProblem(
                status=422,
                code="invalid_input",
                detail=rule_error,
                errors=[{"field": "firewall", "message": rule_error}],
            )
        operation = await page.api.post(page.path("/instances"), body)
    except ApiProblem as problem:
        return render(
            request,
            "instances/new.html",
            page=page,
            catalog=await _catalog(page),
            form=values,
            errors=problem.field_errors() or {"form": problem.detail},
            status_code=problem.status,
        )
    return redirect(f"/projects/{page.id}/instances/{operation['resource']['id']}")


async def _detail_page(
    request: Request,
    page: ProjectPage,
    instance_id: uuid.UUID,
    *,
    problem: ApiProblem | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    """The instance's page; after a refused change, with the API's message (next to the
    form's field when it names one) and its status."""
    if problem is not None and problem.status in (403, 404):
        raise problem
    instance = await page.api.get(_instance_path(page, instance_id))
    operations = (await page.api.get(_instance_path(page, instance_id, "/operations")))["items"]
    errors = problem.field_errors() if problem else {}
    return render(
        request,
        "instances/detail.html",
        page=page,
        instance=instance,
        operations=operations[-10:][::-1],
        running=[op for op in operations if op["status"] in ("pending", "running")],
        sizes=(await page.api.get("/v1/catalog/sizes"))["items"],
        actions=ACTIONS,
        form=form or {},
        errors=errors,
        action_error=problem.detail if problem and not errors else None,
        status_code=problem.status if problem else 200,
    )


@router.get("/projects/{project_id}/instances/{instance_id}", response_class=HTMLResponse)
async def instance(request: Request, page: InProject, instance_id: uuid.UUID) -> Response:
    return await _detail_page(request, page, instance_id)


async def _change(
    request: Request, page: ProjectPage, instance_id: uuid.UUID, action: str, body: Any = None
) -> Response:
    try:
        if action == "delete":
            await page.api.delete(_instance_path(page, instance_id))
        else:
            await page.api.post(_instance_path(page, instance_id, f"/{action}"), body)
    except ApiProblem as problem:
        return await _detail_page(request, page, instance_id, problem=problem)
    return redirect(f"/projects/{page.id}/instances/{instance_id}")


@router.post("/projects/{project_id}/instances/{instance_id}/resize")
async def resize(request: Request, page: InProject, instance_id: uuid.UUID) -> Response:
    values = await form_values(request)
    return await _change(request, page, instance_id, "resize", {"size": values.get("size", "")})


@router.post("/projects/{project_id}/instances/{instance_id}/labels")
async def relabel(request: Request, page: InProject, instance_id: uuid.UUID) -> Response:
    values = await form_values(request)
    body = {"labels": labels_from_text(values.get("labels", ""))}
    try:
        await page.api.patch(_instance_path(page, instance_id), body)
    except ApiProblem as problem:
        return await _detail_page(request, page, instance_id, problem=problem, form=values)
    return redirect(f"/projects/{page.id}/instances/{instance_id}")


@router.post("/projects/{project_id}/instances/{instance_id}/{action}")
async def act(request: Request, page: InProject, instance_id: uuid.UUID, action: str) -> Response:
    if action not in ("start", "stop", "reboot", "delete"):
        raise ApiProblem(status=404, code="not_found", detail=f"No action '{action}'.")
    return await _change(request, page, instance_id, action)


@router.get("/projects/{project_id}/instances/{instance_id}/console", response_class=HTMLResponse)
async def console_output(request: Request, page: InProject, instance_id: uuid.UUID) -> Response:
    instance = await page.api.get(_instance_path(page, instance_id))
    output = await page.api.get(_instance_path(page, instance_id, "/console"))
    return render(request, "instances/console.html", page=page, instance=instance, output=output)
