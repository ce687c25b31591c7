"""The project's live events for the console's pages (status badges update by themselves)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lariba.console.session import SignedIn
from lariba.core.db import DbSession
from lariba.identity.authn import principal_from_access_token
from lariba.identity.authz import load_project
from lariba.monitoring.events.live import LiveRequest, live_events

router = APIRouter()


@router.get("/projects/{project_id}/events")
async def events(
    request: Request, visitor: SignedIn, session: DbSession, project_id: uuid.UUID
) -> Response:
    """The API's event stream, authenticated by the console's cookie: an EventSource
    cannot send a bearer token. The project check is the API's own (404 for a stranger)."""
    principal = await principal_from_access_token(
        session, request.app.state.identity, visitor.access_token
    )
    await load_project(session, principal, project_id)
    last_event_id = request.headers.get("last-event-id", "").strip()
    after = int(last_event_id) if last_event_id.isdigit() else None
    return await live_events(request, session, project_id=project_id, live=LiveRequest(after))
