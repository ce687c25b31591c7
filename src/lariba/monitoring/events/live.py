"""The live side of ``GET /v1/projects/{project_id}/events``: content negotiation,
the resume position, and the streaming response."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import InvalidInput
from lariba.monitoring.events.stream import (
    EventStreamResponse,
    event_frames,
    event_streams,
    start_position,
)

EVENT_STREAM = "text/event-stream"

LIVE_EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "JSON: one page of events, newest first. With `Accept: text/event-stream`: "
            "the events live as server-sent events (`id`, `event`, `data` = a list item)."
        ),
        "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
    },
    503: {
        "description": "Too many live streams on this server (`too_many_event_streams`); "
        "retry after `Retry-After` seconds"
    },
}


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def wants_event_stream(accept: str | None) -> bool:
    """Whether ``Accept`` asks for server-sent events rather than JSON (ties go to the
    stream: a client naming it explicitly means it)."""
    stream_q = json_q = 0.0
    for media_range in (accept or "").split(","):
        media, *params = media_range.split(";")
        media = media.strip().lower()
        if media == EVENT_STREAM:
            stream_q = _quality(params)
        elif media == "application/json":
            json_q = _quality(params)
    return stream_q > 0 and stream_q >= json_q


@dataclass(frozen=True)
class LiveRequest:
    """A request for the live stream: after which event id to start (None: from now)."""

    after: int | None


async def live_request(
    accept: Annotated[
        str | None,
        Header(description="`text/event-stream` streams the events live instead of a page."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            description="Live stream only: resume after this event id (EventSource sends "
            "it when it reconnects). Wins over `after`."
        ),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            description="Live stream only: replay the events after this id, then go live; "
            "0 replays every event. Default: from now.",
        ),
    ] = None,
) -> LiveRequest | None:
    if not wants_event_stream(accept):
        return None
    if last_event_id is not None and last_event_id.strip():
        try:
            after = int(last_event_id.strip())
        except ValueError:
            after = -1
        if after < 0:
            raise InvalidInput("Last-Event-ID", "must be an event id (a whole number, 0 or more)")
    return LiveRequest(after=after)


LiveEvents = Annotated[LiveRequest | None, Depends(live_request)]


async def live_events(
    request: Request, session: AsyncSession, *, project_id: uuid.UUID, live: LiveRequest
) -> EventStreamResponse:
    """The project's events as server-sent events from ``live``'s position. ``session``
    (the request's) only finds the position; each tick of the stream has its own."""
    position = await start_position(session, project_id=project_id, after=live.after)
    app = request.app
    streams = event_streams(app)
    body = event_frames(
        sessionmaker=app.state.sessionmaker,
        streams=streams,
        settings=app.state.settings,
        project_id=project_id,
        position=position,
    )
    return EventStreamResponse(body, streams=streams)
