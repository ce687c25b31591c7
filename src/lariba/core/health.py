"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lariba.core.errors import DATABASE_RETRY_AFTER_SECONDS, problem_response

router = APIRouter(tags=["health"])

_READY_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="Alive: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Ready: the database is reachable",
    responses={503: {"description": "The database is not reachable"}},
)
async def readyz(request: Request) -> Health | JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    try:
        async with asyncio.timeout(_READY_TIMEOUT_SECONDS), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # a timeout, a refused connection, a failed query: not ready
        return problem_response(
            request,
            status=503,
            code="database_unavailable",
            title="Service unavailable",
            detail="The database is not reachable.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return Health(status="ready")
