"""The web console: server-rendered pages at ``/``, served by the API's own process."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from lariba.console.pages import (
    account,
    admin,
    auth,
    buckets,
    databases,
    events,
    instances,
    members,
    monitoring,
    projects,
    usage,
)
from lariba.console.rendering import HERE, install_console_errors
from lariba.console.session import AccessTokens

router = APIRouter(include_in_schema=False)
for pages in (
    auth,
    account,
    admin,
    projects,
    members,
    instances,
    buckets,
    databases,
    usage,
    monitoring,
    events,
):
    router.include_router(pages.router)


def install_console(app: FastAPI) -> None:
    app.state.console_tokens = AccessTokens(app.state.identity)
    install_console_errors(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
