"""The Lariba API as ``lariba serve`` builds it, for ``uvicorn bench.lariba_app:create_app
--factory``: the benchmark then starts both apps with the same uvicorn options. Migrations
and the signing key are the benchmark's job, done before this runs."""

from __future__ import annotations

from fastapi import FastAPI

from lariba.app import create_app as create_lariba_app
from lariba.app import warm_up
from lariba.core.logging import configure_logging
from lariba.core.settings import Settings


def create_app() -> FastAPI:
    settings = Settings()
    if settings.database_url is None:
        raise RuntimeError("LARIBA_DATABASE_URL must be set")
    configure_logging(settings.log_level)
    app = create_lariba_app(settings, database_url=settings.database_url)
    warm_up(app)
    return app
