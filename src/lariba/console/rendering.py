"""Page rendering: the Jinja2 templates, their filters, and the pages for errors."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from lariba.console.api import ApiProblem
from lariba.console.session import CsrfRefused, LoginRequired, SignedIn, Visitor
from lariba.core.settings import ProviderName, Settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

_ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


def _bytes(value: int | float | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _when(value: str | datetime | None) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def money(value: str | Decimal | float | None) -> str:
    """Dollars; under a cent, to the micro-dollar (a young project's cost, an hour of the
    smallest size), never a misleading $0.00."""
    if value is None:
        return "—"
    # Eight places: the API's six, and chart ticks between them, without float noise.
    amount = Decimal(str(value)).quantize(Decimal("1e-8"))
    if amount and abs(amount) < Decimal("0.01"):
        return f"${amount.normalize():f}"
    return f"${amount:,.2f}"


def _with_query(request: Request, **changes: str | None) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    query = {k: v for k, v in request.query_params.items() if k not in changes}
    query.update({k: v for k, v in changes.items() if v is not None})
    return f"{request.url.path}?{urlencode(query)}" if query else request.url.path


def _choices(items: list[dict[str, Any]], value: str, text: str) -> list[tuple[str, str]]:
    """(value, text) pairs for a select, from API list items."""
    return [(str(item[value]), str(item[text])) for item in items]


templates.env.filters["bytes"] = _bytes
templates.env.filters["choices"] = _choices
templates.env.filters["when"] = _when
templates.env.filters["money"] = money
templates.env.globals["with_query"] = _with_query


@dataclass(frozen=True)
class ProjectPage:
    """A page inside one project: the visitor, the project (their role in it) and the
    projects they can switch to."""

    visitor: Visitor
    project: dict[str, Any]
    projects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.project["id"])

    @property
    def api(self) -> Any:
        return self.visitor.api

    @property
    def role(self) -> str:
        return str(self.project["role"])

    def can(self, role: str) -> bool:
        """Whether the visitor's role reaches ``role`` (mutating buttons show only then;
        the API refuses anyway)."""
        return _ROLE_RANK[self.role] >= _ROLE_RANK[role]

    def path(self, suffix: str = "") -> str:
        """The API path of this project, or of something in it."""
        return f"/v1/projects/{self.id}{suffix}"


async def project_page(project_id: uuid.UUID, visitor: SignedIn) -> ProjectPage:
    project = await visitor.api.get(f"/v1/projects/{project_id}")
    projects = (await visitor.api.get("/v1/projects", limit=100))["items"]
    return ProjectPage(visitor=visitor, project=project, projects=projects)


InProject = Annotated[ProjectPage, Depends(project_page)]


def render(
    request: Request,
    name: str,
    *,
    visitor: Visitor | None = None,
    page: ProjectPage | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    visitor = visitor or (page.visitor if page else None)
    return templates.TemplateResponse(
        request,
        name,
        {"visitor": visitor, "page": page, "errors": {}, "form": {}, **context},
        status_code=status_code,
        headers=page_headers(request.app.state.settings),
    )


def page_headers(settings: Settings) -> dict[str, str]:
    """Headers of every console page. Pages may show secrets once: never cached. Only the
    console's own scripts and styles run, it is never framed (clickjacking), and forms post
    only to it. Browsers upload straight to the object store, so scripts may reach it."""
    storage = "'self'"
    if settings.provider is ProviderName.aws:
        storage += " https://*.amazonaws.com"
        if settings.aws_endpoint_url:
            endpoint = urlsplit(settings.aws_endpoint_url)
            storage += f" {endpoint.scheme}://{endpoint.netloc}"
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {storage}; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    )
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }


def redirect(url: str) -> RedirectResponse:
    """After a form post: the browser loads ``url`` with GET (303)."""
    return RedirectResponse(url, status_code=303)


_TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Not valid",
    429: "Too many requests",
}


def error_page(request: Request, *, status: int, detail: str) -> HTMLResponse:
    title = _TITLES.get(status, "Something went wrong" if status >= 500 else "Error")
    return render(
        request, "error.html", status_code=status, title=title, detail=detail, status=status
    )


def install_console_errors(app: FastAPI) -> None:
    async def login_required(request: Request, exc: Exception) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", "text/html"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(f"/login?next={quote(target, safe='')}")
        return error_page(request, status=401, detail="Your session has ended; sign in again.")

    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return error_page(
            request,
            status=403,
            detail="This form was not sent from a Lariba Cloud page, so nothing was changed.",
        )

    async def api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        if exc.status == 401:
            return await login_required(request, exc)
        return error_page(request, status=exc.status, detail=exc.detail)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(ApiProblem, api_problem)
