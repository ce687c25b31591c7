"""The baseline of the projects-list benchmark: a bare FastAPI app that runs the SQL of
``GET /v1/projects`` on the same engine settings, with none of Lariba's middleware,
authentication, dependencies or response models around it. Its statement is built by the
same helpers, so it stays the one Lariba sends; its read-only transaction ends in ROLLBACK
where Lariba's ends in COMMIT, one round trip either way.

Run by the benchmark as ``uvicorn bench.bare_app:create_app --factory``; it reads the
same ``LARIBA_*`` environment as the API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.pagination import DEFAULT_LIMIT, PageRequest, fetch_page
from lariba.core.settings import Settings
from lariba.identity.authn import Principal
from lariba.identity.authz import scoped_projects
from lariba.identity.models import Project

_FIRST_PAGE = PageRequest(limit=DEFAULT_LIMIT, after=None)


def create_app() -> FastAPI:
    settings = Settings()
    if settings.database_url is None:
        raise RuntimeError("LARIBA_DATABASE_URL must be set")
    engine = create_engine(settings, settings.database_url)
    sessionmaker = create_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/projects")
    async def list_projects(user_id: uuid.UUID) -> JSONResponse:
        # The statement Lariba builds for this user: same scoping helper, same page query.
        principal = Principal(user_id=user_id, email="", is_platform_admin=False, method="session")
        async with sessionmaker() as session:
            rows, next_cursor = await fetch_page(
                session,
                scoped_projects(principal),
                page=_FIRST_PAGE,
                created_at=Project.created_at,
                ident=Project.id,
            )
        items = [
            {
                "id": str(project.id),
                "name": project.name,
                "description": project.description,
                "role": role.value,
                "created_at": project.created_at.isoformat(),
                "updated_at": project.updated_at.isoformat(),
            }
            for project, role in rows
        ]
        return JSONResponse({"items": items, "next_cursor": next_cursor})

    return app
