"""Reading a project's resource events as their transactions end and framing them as
server-sent events, from a resumable position, without gaps or repeats.

Event ids come from a sequence at INSERT time, so transactions commit out of id order:
a reader that has seen id 12 can later see id 11 commit, and ``WHERE id > 12`` would
lose it. Each event also records its writing transaction (``xid``, see migration 0010).
A tick reads only events whose transaction is older than every transaction still in
flight (``xid < pg_snapshot_xmin(pg_current_snapshot())``), in ``(xid, id)`` order, after
the last ``(xid, id)`` delivered. Every transaction that has not ended when a tick reads
(or that writes later) has an xid at or above that tick's xmin, so everything that can
still commit sorts after what was delivered: nothing is skipped, nothing repeated. The
price: events of concurrent transactions may arrive out of id order (by transaction).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import structlog
from fastapi import FastAPI, Request
from sqlalchemy import BigInteger, func, literal, select, tuple_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from lariba.cloud.engine.models import ResourceEvent, TransactionId
from lariba.cloud.engine.schemas import EventOut
from lariba.core.errors import problem_response
from lariba.core.settings import Settings

log = structlog.get_logger(__name__)

# What EventSource waits before reconnecting after the stream ends (ms).
RETRY_MS = 3000
# Events per query; a client far behind gets the next batch without waiting a tick.
BATCH = 500
# Sent to a client turned away because the process already serves its maximum of streams.
BUSY_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, order=True)
class Position:
    """Where a reader stands in the stream's ``(xid, id)`` order: after the event ``id``
    of transaction ``xid`` (``id`` 0: before every event of that transaction)."""

    xid: int
    id: int


def _xmin() -> ColumnElement[int]:
    """The oldest transaction still in flight, as seen by the running statement."""
    return func.pg_snapshot_xmin(func.pg_current_snapshot(), type_=TransactionId())


async def start_position(
    session: AsyncSession, *, project_id: uuid.UUID, after: int | None
) -> Position:
    """The position of a new stream: live from now (``after`` None), everything
    (``after`` 0), or after the event ``after`` (a ``Last-Event-ID``).

    Resuming after an event stands at that event's place in the stream, but never
    past the oldest transaction still in flight: an id taken from the JSON list (not
    from this stream) may have committed while an older transaction was still open,
    and that one's events must still come. An id that is not one of the project's
    events resumes after the project's last event below it."""
    xmin: int = (await session.execute(select(_xmin()))).scalar_one()
    now = Position(xid=xmin, id=0)
    if after is None:
        return now
    row = (
        await session.execute(
            select(ResourceEvent.xid, ResourceEvent.id)
            .where(ResourceEvent.project_id == project_id, ResourceEvent.id <= after)
            .order_by(ResourceEvent.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return Position(xid=0, id=0)
    return min(Position(xid=row.xid, id=row.id), now)


async def read_events(
    session: AsyncSession, *, project_id: uuid.UUID, after: Position, limit: int = BATCH
) -> list[ResourceEvent]:
    """The project's events after ``after`` whose transactions have ended and can no
    longer be preceded by a later commit, in ``(xid, id)`` order: one range scan of
    ix_resource_events_project_id_xid."""
    stmt = (
        select(ResourceEvent)
        .where(
            ResourceEvent.project_id == project_id,
            tuple_(ResourceEvent.xid, ResourceEvent.id)
            > tuple_(literal(after.xid, TransactionId()), literal(after.id, BigInteger())),
            ResourceEvent.xid < _xmin(),
        )
        .order_by(ResourceEvent.xid, ResourceEvent.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


def event_frame(event: ResourceEvent) -> str:
    """One server-sent event: the list's JSON item, named by its type, with its id for
    ``Last-Event-ID``."""
    data = EventOut.of(event).model_dump_json()
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


HEARTBEAT = ": keep-alive\n\n"


class EventStreams:
    """The live streams of one API process: their number, capped, and the signal that
    ends them all when the server shuts down (a stream never ends on its own)."""

    def __init__(self, *, max_open: int) -> None:
        self.max_open = max_open
        self.open = 0
        self.closing = asyncio.Event()

    def try_open(self) -> bool:
        if self.open >= self.max_open:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def close(self) -> None:
        self.closing.set()

    async def sleep(self, seconds: float) -> None:
        """Sleeps ``seconds``, or less if the server shuts down meanwhile."""
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self.closing.wait()
        except TimeoutError:
            pass


def event_streams(app: FastAPI) -> EventStreams:
    streams: EventStreams | None = getattr(app.state, "event_streams", None)
    if streams is None:
        settings: Settings = app.state.settings
        streams = EventStreams(max_open=settings.event_stream_max_open)
        app.state.event_streams = streams
    return streams


def close_event_streams(app: FastAPI) -> None:
    """Ends every live stream of ``app`` at its next tick (server shutdown)."""
    event_streams(app).close()


async def event_frames(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    streams: EventStreams,
    settings: Settings,
    project_id: uuid.UUID,
    position: Position,
) -> AsyncGenerator[str, None]:
    """The stream's body: a ``retry`` hint, then every event after ``position`` as its
    transaction ends, and heartbeats in between. Each tick borrows a pooled connection
    for one query and gives it back before writing to the client."""
    yield f"retry: {RETRY_MS}\n\n"
    started = last_sent = time.monotonic()
    while not streams.closing.is_set():
        try:
            async with sessionmaker() as session:
                events = await read_events(session, project_id=project_id, after=position)
        except DBAPIError as exc:
            # The client reconnects with Last-Event-ID and is told 503 until the
            # database is back; nothing is lost.
            log.warning("event_stream_database_error", error_type=type(exc).__name__)
            return
        for event in events:
            yield event_frame(event)
            position = Position(xid=event.xid, id=event.id)
        now = time.monotonic()
        if events:
            last_sent = now
        elif now - last_sent >= settings.event_stream_heartbeat_seconds:
            yield HEARTBEAT
            last_sent = now
        remaining = settings.event_stream_max_seconds - (now - started)
        if remaining <= 0:
            return
        if len(events) == BATCH:
            continue
        await streams.sleep(
            min(
                settings.event_stream_poll_seconds,
                settings.event_stream_heartbeat_seconds - (now - last_sent),
                remaining,
            )
        )


class EventStreamResponse(StreamingResponse):
    """A live event stream: takes one of the process's stream slots for as long as it
    runs (503 when none is left), and closes its body however the response ends —
    finished, client gone (cancelled) or never started."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[str, None], *, streams: EventStreams) -> None:
        super().__init__(
            content,
            headers={
                "Cache-Control": "no-cache",
                # nginx buffers responses unless told not to; events would arrive late.
                "X-Accel-Buffering": "no",
            },
        )
        self._content = content
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._streams.try_open():
            await self._content.aclose()
            refusal = problem_response(
                Request(scope),
                status=503,
                code="too_many_event_streams",
                title="Service unavailable",
                detail="This server already serves its maximum of live event streams.",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
                extra={"retry_after": BUSY_RETRY_AFTER_SECONDS},
            )
            await refusal(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._streams.release()
            await self._content.aclose()
