"""Usage and cost (month to date, forecast, budget, charts by day and by resource kind,
the FOCUS export) and resource metrics (a resource's series as line charts)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from lariba.console.api import ApiProblem
from lariba.console.charts import Chart, bar_chart, line_chart
from lariba.console.forms import form_values, number
from lariba.console.rendering import InProject, ProjectPage, money, redirect, render, templates

router = APIRouter()

DateParam = Annotated[str | None, Query(alias="from")]
_DETAIL_PAGES = {"instance": "instances", "bucket": "buckets", "database": "databases"}
# API requests are metered against the project itself.
_KIND_NAMES = {"project": "API requests", None: "other"}


def _day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = "Write a date as YYYY-MM-DD."
        raise ApiProblem(
            status=422,
            code="invalid_input",
            detail=message,
            errors=[{"field": field, "message": message}],
        ) from None


def _window(start: str | None, end: str | None) -> dict[str, str]:
    """The API's window for the form's days: from the first day's start to the end of the
    last day (the form's "to" is inclusive, the API's exclusive)."""
    window: dict[str, str] = {}
    if start:
        window["from"] = f"{_day(start, 'from').isoformat()}T00:00:00Z"
    if end:
        window["to"] = f"{(_day(end, 'to') + timedelta(days=1)).isoformat()}T00:00:00Z"
    return window


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _last_day(report: dict[str, Any]) -> date:
    """The last day a report's window touches (its end is exclusive)."""
    return (_moment(report["to"]) - timedelta(microseconds=1)).date()


def _daily_chart(report: dict[str, Any]) -> Chart:
    costs = {item["day"]: float(item["cost_usd"]) for item in report["items"]}
    first, last = _moment(report["from"]).date(), _last_day(report)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    rows = [(day.strftime("%m-%d"), costs.get(day.isoformat(), 0.0)) for day in days]
    return bar_chart("Cost by day (UTC)", rows, unit="USD", fmt=money, key="Day")


def _kind_chart(report: dict[str, Any]) -> Chart:
    rows = sorted(
        (
            (_KIND_NAMES.get(item["resource_kind"], item["resource_kind"]), float(item["cost_usd"]))
            for item in report["items"]
        ),
        key=lambda row: -row[1],
    )
    return bar_chart("Cost by resource kind", rows, unit="USD", fmt=money, key="Resource kind")


def _by_resource(page: ProjectPage, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The usage report's rows, most expensive first, with a link to each resource."""
    rows = []
    for item in report["items"]:
        resource = item.get("resource") or {}
        section = _DETAIL_PAGES.get(resource.get("kind", ""))
        link = f"/projects/{page.id}/{section}/{resource['id']}" if section else None
        rows.append({**item, "link": link})
    return sorted(rows, key=lambda row: (-Decimal(row["cost_usd"]), row["meter"]))


async def _budget(page: ProjectPage) -> dict[str, Any] | None:
    try:
        budget: dict[str, Any] = await page.api.get(page.path("/budget"))
    except ApiProblem as problem:
        if problem.code != "budget_not_set":
            raise
        return None
    return budget


async def _reports(page: ProjectPage, window: dict[str, str]) -> dict[str, Any]:
    daily = await page.api.get(page.path("/cost"), group_by="day", **window)
    kinds = await page.api.get(page.path("/cost"), group_by="resource_kind", **window)
    resources = await page.api.get(page.path("/usage"), group_by="resource", **window)
    return {"daily": daily, "kinds": kinds, "resources": resources}


async def _usage_page(
    request: Request,
    page: ProjectPage,
    *,
    start: str | None,
    end: str | None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The page for the days asked; days the API refuses are shown with its error next to
    the field, over this month's report."""
    errors = dict(errors or {})
    window_form = {"from": start or "", "to": end or ""}
    try:
        reports = await _reports(page, _window(start, end))
    except ApiProblem as problem:
        if problem.status != 422:
            raise
        errors.update(problem.field_errors() or {"from": problem.detail})
        status_code = 422
        reports = await _reports(page, {})
    else:
        if not start and not end:
            daily = reports["daily"]
            window_form = {"from": daily["from"][:10], "to": _last_day(daily).isoformat()}
    budget = await _budget(page)
    budget_form = form or (
        {
            "amount_usd": budget["amount_usd"],
            "thresholds": ", ".join(str(t) for t in budget["thresholds"]),
            "block_provisioning": "on" if budget["block_provisioning"] else "",
        }
        if budget
        else {"thresholds": "50, 80, 100"}
    )
    daily = reports["daily"]
    return render(
        request,
        "usage/usage.html",
        page=page,
        daily=daily,
        forecast=daily["forecast"],
        day_chart=_daily_chart(daily),
        kind_chart=_kind_chart(reports["kinds"]),
        resources=_by_resource(page, reports["resources"]),
        first_day=daily["from"][:10],
        last_day=_last_day(daily).isoformat(),
        window_form=window_form,
        budget=budget,
        form=budget_form,
        errors=errors,
        saved=request.query_params.get("saved"),
        status_code=status_code,
    )


@router.get("/projects/{project_id}/usage", response_class=HTMLResponse)
async def usage(
    request: Request,
    page: InProject,
    start: DateParam = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    return await _usage_page(request, page, start=start, end=end)


@router.get("/projects/{project_id}/usage/export.csv")
async def export_csv(
    page: InProject,
    start: DateParam = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    """The API's FOCUS CSV for the same days as the page, as a download."""
    response = await page.api.call("GET", page.path("/cost/export"), params=_window(start, end))
    disposition = response.headers.get(
        "content-disposition", f'attachment; filename="lariba-{page.id}.csv"'
    )
    return Response(
        content=response.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


@router.post("/projects/{project_id}/usage/budget")
async def set_budget(request: Request, page: InProject) -> Response:
    values = await form_values(request)
    thresholds = [number(t) for t in values.get("thresholds", "").split(",") if t.strip()]
    body: dict[str, Any] = {
        "amount_usd": values.get("amount_usd", ""),
        "block_provisioning": values.get("block_provisioning") == "on",
    }
    if thresholds:
        body["thresholds"] = thresholds
    try:
        await page.api.put(page.path("/budget"), body)
    except ApiProblem as problem:
        if problem.status in (403, 404):
            raise
        return await _usage_page(
            request,
            page,
            start=None,
            end=None,
            errors=problem.field_errors() or {"form": problem.detail},
            form=values,
            status_code=problem.status,
        )
    return redirect(f"/projects/{page.id}/usage?saved=budget")


@router.post("/projects/{project_id}/usage/budget/delete")
async def delete_budget(page: InProject) -> Response:
    await page.api.delete(page.path("/budget"))
    return redirect(f"/projects/{page.id}/usage?saved=removed")


# Metrics ---------------------------------------------------------------------------------

RANGES = {
    "1h": ("Last hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
}
_KINDS = (("instance", "instances"), ("database", "databases"), ("bucket", "buckets"))


def _plain(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _format_for(unit: str) -> Callable[[float], str]:
    """How a metric's values read, by its unit."""
    if unit == "bytes":
        size: Callable[[float], str] = templates.env.filters["bytes"]
        return size
    if unit == "percent":
        return lambda value: f"{value:.1f}%"
    return _plain


async def _resources(page: ProjectPage) -> list[tuple[str, list[dict[str, Any]]]]:
    """The project's live resources, by kind, for the resource select."""
    return [
        (kind, (await page.api.get(page.path(f"/{plural}"), limit=200))["items"])
        for kind, plural in _KINDS
    ]


def _series_window(span: str, start: str | None, end: str | None) -> dict[str, str]:
    if span == "custom":
        return {k: v for k, v in (("from", start), ("to", end)) if v}
    since = datetime.now(UTC) - RANGES.get(span, RANGES["1h"])[1]
    return {"from": since.strftime("%Y-%m-%dT%H:%M:%SZ")}


async def _charts(
    page: ProjectPage, resource: str, names: list[dict[str, Any]], window: dict[str, str]
) -> list[tuple[dict[str, Any], Chart]]:
    charts = []
    for metric in names:
        series = await page.api.get(
            page.path("/metrics"), resource=resource, name=metric["name"], **window
        )
        points = [(_moment(p["time"]), float(p["value"])) for p in series["points"]]
        title = f"{metric['name']} ({series['aggregate']} per {series['step']})"
        chart = line_chart(
            title,
            points,
            unit=series["unit"],
            fmt=_format_for(series["unit"]),
            window=(_moment(series["from"]), _moment(series["to"])),
        )
        charts.append((metric, chart))
    return charts


@router.get("/projects/{project_id}/metrics", response_class=HTMLResponse)
async def metrics(
    request: Request,
    page: InProject,
    resource: str | None = None,
    name: str | None = None,
    span: Annotated[str, Query(alias="range")] = "1h",
    start: DateParam = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    span = span if span in (*RANGES, "custom") else "1h"
    resources = await _resources(page)
    chosen: dict[str, Any] | None = None
    names: list[dict[str, Any]] = []
    charts: list[tuple[dict[str, Any], Chart]] = []
    errors: dict[str, str] = {}
    status_code = 200
    if resource:
        try:
            listing = await page.api.get(page.path("/metrics/names"), resource=resource)
            chosen, names = listing["resource"], listing["items"]
            reported = [m for m in names if m["reported"]]
            shown = [m for m in reported if m["name"] == name] or reported
            name = name if len(shown) == 1 and shown[0]["name"] == name else ""
            charts = await _charts(page, resource, shown, _series_window(span, start, end))
        except ApiProblem as problem:
            if problem.status not in (404, 422):
                raise
            fields = problem.field_errors()
            errors = {k: v for k, v in fields.items() if k in ("resource", "name", "from", "to")}
            errors = errors or {"resource" if problem.status == 404 else "form": problem.detail}
            status_code = problem.status
            charts = []
    if chosen and all(str(r["id"]) != str(chosen["id"]) for _, items in resources for r in items):
        # A deleted resource keeps its history: offer it too.
        next(items for kind, items in resources if kind == chosen["kind"]).append(chosen)
    return render(
        request,
        "metrics/metrics.html",
        page=page,
        resources=resources,
        chosen=chosen,
        names=names,
        charts=charts,
        ranges=[*((k, label) for k, (label, _) in RANGES.items()), ("custom", "Custom")],
        form={
            "resource": resource or "",
            "name": name or "",
            "range": span,
            "from": start or "",
            "to": end or "",
        },
        errors=errors,
        latest_text=lambda metric: (
            _format_for(metric["unit"])(metric["latest"]["value"]) if metric["latest"] else "—"
        ),
        detail_link=lambda ref: (
            f"/projects/{page.id}/{_DETAIL_PAGES[ref['kind']]}/{ref['id']}"
            if ref["kind"] in _DETAIL_PAGES
            else None
        ),
        status_code=status_code,
    )
