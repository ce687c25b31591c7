"""The web console: server-rendered pages at ``/``, served by the API's own process."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from lariba.console.pages import (
    account,
    admin,
    alerts,
    auth,
    buckets,
    databases,
    events,
    instances,
    members,
    monitoring,
    projects,
    usage,
    webhooks,
)
from lariba.console.rendering import HERE, install_console_errors
from lariba.console.session import AccessTokens

# Each module's router holds its pages (tests walk them to cover every page).
PAGE_MODULES = (
    auth,
    account,
    admin,
    projects,
    members,
    instances,
    buckets,
    databases,
    usage,
    alerts,
    webhooks,
    monitoring,
    events,
)
router = APIRouter(include_in_schema=False)
for pages in PAGE_MODULES:
    router.include_router(pages.router)


def install_console(app: FastAPI) -> None:
    app.state.console_tokens = AccessTokens(app.state.identity)
    install_console_errors(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
