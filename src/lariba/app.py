"""The FastAPI application: shared kit plus the routers of the services it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lariba import __version__
from lariba.cloud.catalog.router import router as catalog_router
from lariba.core import health
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.errors import install_error_handlers
from lariba.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from lariba.core.settings import Settings
from lariba.identity.router import router as identity_router
from lariba.identity.runtime import IdentityRuntime
from lariba.providers.catalog import load_catalog

log = structlog.get_logger(__name__)

DESCRIPTION = """
Lariba Cloud's REST API. Authenticate with **Authorize** (your e-mail and password) or send
`Authorization: Bearer <access token or API key>`. Errors are RFC 9457 problem+json
documents with a stable `code`. Lists are cursor-paginated: pass `next_cursor` back as
`cursor`.
"""


def create_app(
    settings: Settings, *, database_url: str, engine: AsyncEngine | None = None
) -> FastAPI:
    """Builds the API. ``database_url`` is resolved by the caller (the CLI starts the
    embedded PostgreSQL when none is configured)."""
    engine = engine or create_engine(settings, database_url)
    sessionmaker = create_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await app.state.identity.keyring.load()
        except Exception as exc:  # the API still starts; it answers 503 until the DB is back
            log.warning("signing_keys_not_loaded", error_type=type(exc).__name__)
        yield
        await engine.dispose()

    app = FastAPI(
        title="Lariba Cloud API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.identity = IdentityRuntime.create(settings, sessionmaker)
    app.state.catalog = load_catalog(settings.provider.value, settings.catalog_file)

    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(identity_router)
    app.include_router(catalog_router)
    return app
