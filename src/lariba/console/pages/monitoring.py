"""Monitoring pages: the project's activity feed and audit log (with its export). The
alert and webhook pages have modules of their own."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.rendering import InProject, render

router = APIRouter()

AUDIT_FILTERS = ("action", "actor", "target_type", "target_id", "outcome", "from", "to")
OUTCOMES = [(o, o) for o in ("success", "failure", "denied")]
# What a datetime-local input sends ("2026-11-30T14:42"): read as UTC, the console's zone.
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@router.get("/projects/{project_id}/activity", response_class=HTMLResponse)
async def activity(request: Request, page: InProject, cursor: str | None = None) -> Response:
    listing = await page.api.get(page.path("/activity"), cursor=cursor, limit=50)
    return render(request, "activity/list.html", page=page, activity=listing)


def as_utc(value: str) -> str:
    """A time as the API takes it (with a zone): one without a zone is UTC, a date is its
    midnight; anything else goes to the API as typed, for it to judge."""
    if _DATE.match(value):
        return f"{value}T00:00:00Z"
    if _LOCAL_TIME.match(value):
        return f"{value}Z"
    return value


def audit_filters(request: Request) -> dict[str, str]:
    """The audit filters in this page's query, as typed."""
    return {name: request.query_params.get(name, "").strip() for name in AUDIT_FILTERS}


def audit_query(filters: dict[str, str]) -> dict[str, str]:
    """The filters that were filled in, as the API takes them."""
    query = {name: value for name, value in filters.items() if value}
    for name in ("from", "to"):
        if name in query:
            query[name] = as_utc(query[name])
    return query


@router.get("/projects/{project_id}/audit", response_class=HTMLResponse)
async def audit(request: Request, page: InProject, cursor: str | None = None) -> Response:
    filters = audit_filters(request)
    try:
        events = await page.api.get(
            page.path("/audit"), **audit_query(filters), cursor=cursor, limit=50
        )
        errors: dict[str, str] = {}
    except ApiProblem as problem:
        if problem.status != 422:
            raise
        events, errors = {"items": [], "next_cursor": None}, problem.field_errors()
        if not errors.keys() & set(AUDIT_FILTERS):
            errors["form"] = problem.detail
    chosen = urlencode({name: value for name, value in filters.items() if value})
    return render(
        request,
        "audit/list.html",
        page=page,
        events=events,
        filters=filters,
        outcomes=OUTCOMES,
        export_url=f"/projects/{page.id}/audit/export" + (f"?{chosen}" if chosen else ""),
        errors=errors,
        status_code=422 if errors else 200,
    )


@router.get("/projects/{project_id}/audit/export")
async def export_audit(request: Request, page: InProject) -> Response:
    """The API's JSON-lines export with this page's filters, as a file download."""
    filters = audit_filters(request)
    answer = await page.api.call("GET", page.path("/audit/export"), params=audit_query(filters))
    return Response(
        answer.content,
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": answer.headers.get(
                "content-disposition", f'attachment; filename="audit-{page.id}.jsonl"'
            ),
            "Cache-Control": "no-store",
        },
    )
