"""Databases: the list, the create form, the detail page (connection details, live status,
actions, snapshots, metrics), restoring a snapshot, and the project's snapshots.

A password appears only in the page answering the form post that made or revealed it:
never in a URL, a cookie or a page fetched again."""

from __future__ import annotations

import uuid
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.forms import form_values, labels_from_text, number, optional
from lariba.console.rendering import InProject, ProjectPage, redirect, render

router = APIRouter()

STATUSES = ("pending", "provisioning", "available", "modifying", "deleting", "deleted", "error")
MASK = "********"
# Why a page shows a password: a new database (or one restored), a new password, or an
# owner or admin asked for it.
Shown = Literal["created", "reset", "revealed"]


def masked_connection_string(endpoint: dict[str, Any] | None) -> str | None:
    """The libpq URI of the database with its password replaced by asterisks."""
    if not endpoint or not endpoint.get("host") or not endpoint.get("port"):
        return None
    user, database = quote(endpoint["username"], safe=""), quote(endpoint["database"], safe="")
    return f"postgresql://{user}:{MASK}@{endpoint['host']}:{endpoint['port']}/{database}"


async def _catalog(page: ProjectPage) -> dict[str, Any]:
    return {
        "sizes": (await page.api.get("/v1/catalog/database-sizes"))["items"],
        "engines": (await page.api.get("/v1/catalog/database-engines"))["items"],
    }


def _database_path(page: ProjectPage, database_id: uuid.UUID | str, suffix: str = "") -> str:
    return page.path(f"/databases/{database_id}{suffix}")


def _snapshot_path(page: ProjectPage, snapshot_id: uuid.UUID, suffix: str = "") -> str:
    return page.path(f"/database-snapshots/{snapshot_id}{suffix}")


def _detail_url(page: ProjectPage, database_id: uuid.UUID | str) -> str:
    return f"/projects/{page.id}/databases/{database_id}"


@router.get("/projects/{project_id}/databases", response_class=HTMLResponse)
async def databases(
    request: Request, page: InProject, status: str | None = None, cursor: str | None = None
) -> Response:
    try:
        listing = await page.api.get(
            page.path("/databases"), status=status, cursor=cursor, limit=25
        )
        errors: dict[str, str] = {}
    except ApiProblem as problem:
        if problem.status != 422:
            raise
        listing, errors = {"items": [], "next_cursor": None}, problem.field_errors()
    return render(
        request,
        "databases/list.html",
        page=page,
        listing=listing,
        status=status or "",
        statuses=[(s, s) for s in STATUSES],
        errors=errors,
        status_code=422 if errors else 200,
    )


@router.get("/projects/{project_id}/databases/new", response_class=HTMLResponse)
async def new_database(request: Request, page: InProject) -> Response:
    return render(request, "databases/new.html", page=page, catalog=await _catalog(page))


@router.post("/projects/{project_id}/databases/new")
async def create_database(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    body: dict[str, Any] = {
        "name": values.get("name", ""),
        "size": values.get("size", ""),
        "deletion_protection": values.get("deletion_protection") == "on",
        "labels": labels_from_text(values.get("labels", "")),
        **optional(values, "engine_version"),
    }
    if (storage := number(values.get("storage_gb", ""))) is not None:
        body["storage_gb"] = storage
    try:
        answer = await page.api.post(page.path("/databases"), body)
    except ApiProblem as problem:
        return render(
            request,
            "databases/new.html",
            page=page,
            catalog=await _catalog(page),
            form=values,
            errors=problem.field_errors() or {"form": problem.detail},
            status_code=problem.status,
        )
    return await _detail_page(
        request,
        page,
        uuid.UUID(answer["resource"]["id"]),
        credentials=answer["credentials"],
        shown="created",
    )


@router.get("/projects/{project_id}/databases/snapshots", response_class=HTMLResponse)
async def snapshots(request: Request, page: InProject, cursor: str | None = None) -> Response:
    listing = await page.api.get(page.path("/database-snapshots"), cursor=cursor, limit=50)
    return render(request, "databases/snapshots.html", page=page, listing=listing)


@router.get(
    "/projects/{project_id}/databases/snapshots/{snapshot_id}/restore",
    response_class=HTMLResponse,
)
async def restore_form(request: Request, page: InProject, snapshot_id: uuid.UUID) -> Response:
    snapshot = await page.api.get(_snapshot_path(page, snapshot_id))
    return render(
        request,
        "databases/restore.html",
        page=page,
        snapshot=snapshot,
        sizes=(await _catalog(page))["sizes"],
        form={"size": snapshot["size"], "storage_gb": str(snapshot["storage_gb"])},
    )


@router.post("/projects/{project_id}/databases/snapshots/{snapshot_id}/restore")
async def restore(request: Request, page: InProject, snapshot_id: uuid.UUID) -> Response:
    values = await form_values(request)
    body: dict[str, Any] = {
        "name": values.get("name", ""),
        "deletion_protection": values.get("deletion_protection") == "on",
        "labels": labels_from_text(values.get("labels", "")),
        **optional(values, "size"),
    }
    if (storage := number(values.get("storage_gb", ""))) is not None:
        body["storage_gb"] = storage
    try:
        answer = await page.api.post(_snapshot_path(page, snapshot_id, "/restore"), body)
    except ApiProblem as problem:
        if problem.status == 404:
            raise
        return render(
            request,
            "databases/restore.html",
            page=page,
            snapshot=await page.api.get(_snapshot_path(page, snapshot_id)),
            sizes=(await _catalog(page))["sizes"],
            form=values,
            errors=problem.field_errors() or {"form": problem.detail},
            status_code=problem.status,
        )
    return await _detail_page(
        request,
        page,
        uuid.UUID(answer["resource"]["id"]),
        credentials=answer["credentials"],
        shown="created",
    )


@router.post("/projects/{project_id}/databases/snapshots/{snapshot_id}/delete")
async def delete_snapshot(request: Request, page: InProject, snapshot_id: uuid.UUID) -> Response:
    """Back to the page the button was on: the project's snapshots, or the database's."""
    from_list = (await form_values(request)).get("back") == "snapshots"
    snapshot = await page.api.get(_snapshot_path(page, snapshot_id))
    try:
        await page.api.delete(_snapshot_path(page, snapshot_id))
    except ApiProblem as problem:
        if problem.status in (403, 404) or from_list:
            raise
        return await _detail_page(
            request,
            page,
            uuid.UUID(snapshot["database_id"]),
            action_error=problem.detail,
            status_code=problem.status,
        )
    if from_list:
        return redirect(f"/projects/{page.id}/databases/snapshots")
    return redirect(_detail_url(page, snapshot["database_id"]))


async def _metrics(page: ProjectPage, database: dict[str, Any]) -> dict[str, Any] | None:
    """Measured now at the provider; None while the database does not run there."""
    if database["provider_id"] is None or database["status"] in ("deleting", "deleted"):
        return None
    try:
        measured: dict[str, Any] = await page.api.get(
            _database_path(page, database["id"], "/metrics")
        )
    except ApiProblem as problem:
        if problem.status not in (409, 503):
            raise
        return None
    return measured


async def _detail_page(
    request: Request,
    page: ProjectPage,
    database_id: uuid.UUID,
    *,
    credentials: dict[str, Any] | None = None,
    shown: Shown | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    action_error: str | None = None,
    status_code: int = 200,
) -> Response:
    database = await page.api.get(_database_path(page, database_id))
    operations = (await page.api.get(_database_path(page, database_id, "/operations"), limit=200))[
        "items"
    ]
    snapshot_list = await page.api.get(_database_path(page, database_id, "/snapshots"), limit=50)
    return render(
        request,
        "databases/detail.html",
        page=page,
        database=database,
        connection_string=masked_connection_string(database["endpoint"]),
        metrics=await _metrics(page, database),
        operations=operations[-10:][::-1],
        running=[op for op in operations if op["status"] in ("pending", "running")],
        snapshots=snapshot_list["items"][::-1],
        more_snapshots=snapshot_list["next_cursor"] is not None,
        sizes=(await page.api.get("/v1/catalog/database-sizes"))["items"],
        credentials=credentials,
        shown=shown,
        errors=errors or {},
        form=form or {},
        action_error=action_error,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/databases/{database_id}", response_class=HTMLResponse)
async def database(request: Request, page: InProject, database_id: uuid.UUID) -> Response:
    return await _detail_page(request, page, database_id)


async def _change(
    request: Request,
    page: ProjectPage,
    database_id: uuid.UUID,
    *,
    method: str,
    suffix: str = "",
    body: Any = None,
    params: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    then: str | None = None,
) -> Response:
    """Asks the API for a change, then shows the database again (or ``then``); a refusal
    is shown on the database's page, next to the field it is about (``form``: what was
    typed there)."""
    try:
        await page.api.call(
            method, _database_path(page, database_id, suffix), json=body, params=params
        )
    except ApiProblem as problem:
        if problem.status in (403, 404):
            raise
        return await _detail_page(
            request,
            page,
            database_id,
            errors=problem.field_errors(),
            form=form,
            action_error=problem.detail,
            status_code=problem.status,
        )
    return redirect(then or _detail_url(page, database_id))


async def _with_password(
    request: Request, page: ProjectPage, database_id: uuid.UUID, *, suffix: str, shown: Shown
) -> Response:
    """The database's page showing the password the API answered with, this once."""
    try:
        answer = await page.api.post(_database_path(page, database_id, suffix))
    except ApiProblem as problem:
        if problem.status in (403, 404):
            raise
        return await _detail_page(
            request, page, database_id, action_error=problem.detail, status_code=problem.status
        )
    credentials = answer.get("credentials", answer)
    return await _detail_page(request, page, database_id, credentials=credentials, shown=shown)


@router.post("/projects/{project_id}/databases/{database_id}/reveal")
async def reveal(request: Request, page: InProject, database_id: uuid.UUID) -> Response:
    return await _with_password(
        request, page, database_id, suffix="/credentials/reveal", shown="revealed"
    )


@router.post("/projects/{project_id}/databases/{database_id}/reset-password")
async def reset_password(request: Request, page: InProject, database_id: uuid.UUID) -> Response:
    return await _with_password(request, page, database_id, suffix="/reset-password", shown="reset")


@router.post("/projects/{project_id}/databases/{database_id}/resize")
async def resize(request: Request, page: InProject, database_id: uuid.UUID) -> Response:
    values = await form_values(request)
    body: dict[str, Any] = optional(values, "size")
    if (storage := number(values.get("storage_gb", ""))) is not None:
        body["storage_gb"] = storage
    return await _change(
        request, page, database_id, method="POST", suffix="/resize", body=body, form=values
    )


@router.post("/projects/{project_id}/databases/{database_id}/protection")
async def protection(request: Request, page: InProject, database_id: uuid.UUID) -> Response:
    values = await form_values(request)
    body = {"deletion_protection": values.get("deletion_protection") == "on"}
    return await _change(request, page, database_id, method="PATCH", body=body)


@router.post("/projects/{project_id}/databases/{database_id}/snapshots")
async def take_snapshot(request: Request, page: InProject, database_id: uuid.UUID) -> Response:
    return await _change(request, page, database_id, method="POST", suffix="/snapshots")


@router.post("/projects/{project_id}/databases/{database_id}/delete")
async def delete_database(request: Request, page: InProject, database_id: uuid.UUID) -> Response:
    values = await form_values(request)
    final = "true" if values.get("final_snapshot") == "on" else "false"
    return await _change(
        request,
        page,
        database_id,
        method="DELETE",
        params={"final_snapshot": final},
        then=f"/projects/{page.id}/databases",
    )
