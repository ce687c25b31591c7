"""The calls on what a project used, cost and did, as flows (see ``session``): usage and
cost reports, the budget, resource logs, the audit log, alert rules and the project's
events, with the pieces the live side needs (reading server-sent events, telling a
followed log's new entries from those already seen)."""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from lariba.client.models import (
    AlertRule,
    AlertSource,
    AlertStateChange,
    AuditEvent,
    Budget,
    CostReport,
    Event,
    LogEntry,
    UsageReport,
)
from lariba.client.session import Call, Download, Flow, Session
from lariba.client.storage import Destination, writing

# What a reconnecting stream waits when the server has not said (its ``retry:``).
DEFAULT_RECONNECT_SECONDS = 3.0
# Sent as an alert rule's field to leave it unchanged in an update.
UNCHANGED: Any = object()


def _window(
    start: datetime | str | None, end: datetime | str | None
) -> tuple[tuple[str, str], ...]:
    params: list[tuple[str, str]] = []
    for name, value in (("from", start), ("to", end)):
        if value is not None:
            params.append((name, value.isoformat() if isinstance(value, datetime) else value))
    return tuple(params)


def _group_by(values: str | Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(("group_by", value) for value in values)


def first_items(session: Session, call: Call, *, limit: int | None) -> Flow[list[Any]]:
    """The items of a list, following ``next_cursor``: all of them, or the first
    ``limit``."""
    if limit is None:
        return (yield from session.all_pages(call))
    items: list[Any] = []
    cursor: str | None = None
    while len(items) < limit:
        params = (*call.params, ("limit", str(min(200, limit - len(items)))))
        if cursor is not None:
            params += (("cursor", cursor),)
        response = yield from session.request(dataclasses.replace(call, params=params))
        body = response.json()
        items.extend(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return items[:limit]


class UsageCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/usage"

    def report(
        self,
        *,
        start: datetime | str | None,
        end: datetime | str | None,
        group_by: str | Iterable[str] | None,
    ) -> Flow[UsageReport]:
        params = _window(start, end) + _group_by(group_by)
        response = yield from self._session.request(Call("GET", self._path, params=params))
        return UsageReport.from_json(response.json())


class CostCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/cost"
        self._budget = f"/v1/projects/{project_id}/budget"

    def report(
        self,
        *,
        start: datetime | str | None,
        end: datetime | str | None,
        group_by: str | Iterable[str] | None,
    ) -> Flow[CostReport]:
        params = _window(start, end) + _group_by(group_by)
        response = yield from self._session.request(Call("GET", self._path, params=params))
        return CostReport.from_json(response.json())

    def export(
        self,
        destination: Destination,
        *,
        start: datetime | str | None,
        end: datetime | str | None,
    ) -> Flow[None]:
        """Streams the FOCUS CSV into ``destination`` (a path is written whole or not at
        all)."""
        call = Call("GET", f"{self._path}/export", params=_window(start, end))
        with writing(destination) as file:
            yield from download(self._session, call, file.write)

    def budget(self) -> Flow[Budget]:
        response = yield from self._session.request(Call("GET", self._budget))
        return Budget.from_json(response.json())

    def set_budget(
        self, *, amount_usd: Decimal | str, thresholds: Iterable[int] | None, block: bool
    ) -> Flow[Budget]:
        body: dict[str, Any] = {"amount_usd": str(amount_usd), "block_provisioning": block}
        if thresholds is not None:
            body["thresholds"] = list(thresholds)
        response = yield from self._session.request(Call("PUT", self._budget, json=body))
        return Budget.from_json(response.json())

    def delete_budget(self) -> Flow[None]:
        yield from self._session.request(Call("DELETE", self._budget))


def download(session: Session, call: Call, write: Callable[[bytes], object]) -> Flow[None]:
    """Streams the successful answer to ``call`` into ``write``; raises the typed error
    of a failed one (whose body is never written)."""
    yield from session.request(Download(call, write))


class LogCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/logs"

    def get(self, resource_id: str) -> Flow[list[LogEntry]]:
        items = yield from self._session.all_pages(
            Call("GET", self._path, params=(("resource_id", resource_id),)), page_size=200
        )
        return [LogEntry.from_json(item) for item in items]


class LogFollower:
    """Tells the new entries of a log read again and again: those not seen before, and
    operations whose summary changed (their status moved on). Entries of transactions
    that commit late can appear before the last entry seen, so it keeps every key rather
    than a position."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}

    def new(self, entries: Iterable[LogEntry]) -> list[LogEntry]:
        fresh = []
        for entry in entries:
            if self._seen.get(entry.key) != entry.summary:
                self._seen[entry.key] = entry.summary
                fresh.append(entry)
        return fresh


@dataclass(frozen=True)
class AuditFilter:
    """Which audit events to read; each given field must match (see monitoring.md)."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    start: datetime | str | None = None
    end: datetime | str | None = None

    def params(self) -> tuple[tuple[str, str], ...]:
        fields = {
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "outcome": self.outcome,
        }
        given = tuple((name, value) for name, value in fields.items() if value is not None)
        return given + _window(self.start, self.end)


class AuditCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/audit"

    def list(self, where: AuditFilter, *, limit: int | None) -> Flow[list[AuditEvent]]:
        items = yield from first_items(
            self._session, Call("GET", self._path, params=where.params()), limit=limit
        )
        return [AuditEvent.from_json(item) for item in items]

    def export(self, where: AuditFilter, destination: Destination) -> Flow[int]:
        """Streams every matching event, oldest first, as JSON lines into
        ``destination``; the number of events."""
        call = Call("GET", f"{self._path}/export", params=where.params())
        lines = 0
        with writing(destination) as file:

            def write(chunk: bytes) -> None:
                nonlocal lines
                file.write(chunk)
                lines += chunk.count(b"\n")

            yield from download(self._session, call, write)
        return lines


class AlertCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/alerts"

    def create(
        self,
        *,
        name: str,
        source: AlertSource,
        comparison: str,
        threshold: Decimal | str | int,
        window: str | None,
        enabled: bool,
        emails: Iterable[str],
    ) -> Flow[AlertRule]:
        body: dict[str, Any] = {
            "name": name,
            "source": source.to_json(),
            "comparison": comparison,
            "threshold": str(threshold),
            "enabled": enabled,
            "emails": list(emails),
        }
        if window is not None:
            body["window"] = window
        response = yield from self._session.request(Call("POST", self._path, json=body))
        return AlertRule.from_json(response.json())

    def list(self) -> Flow[list[AlertRule]]:
        items = yield from self._session.all_pages(Call("GET", self._path))
        return [AlertRule.from_json(item) for item in items]

    def get(self, alert_id: str) -> Flow[AlertRule]:
        response = yield from self._session.request(Call("GET", f"{self._path}/{alert_id}"))
        return AlertRule.from_json(response.json())

    def update(self, alert_id: str, changes: Mapping[str, Any]) -> Flow[AlertRule]:
        """Sends only the fields in ``changes`` whose value is not ``UNCHANGED``."""
        body: dict[str, Any] = {}
        for name, value in changes.items():
            if value is UNCHANGED:
                continue
            if name == "source":
                value = value.to_json()
            elif name == "threshold":
                value = str(value)
            elif name == "emails":
                value = list(value)
            body[name] = value
        response = yield from self._session.request(
            Call("PATCH", f"{self._path}/{alert_id}", json=body)
        )
        return AlertRule.from_json(response.json())

    def delete(self, alert_id: str) -> Flow[None]:
        yield from self._session.request(Call("DELETE", f"{self._path}/{alert_id}"))

    def history(self, alert_id: str) -> Flow[builtins.list[AlertStateChange]]:
        items = yield from self._session.all_pages(Call("GET", f"{self._path}/{alert_id}/history"))
        return [AlertStateChange.from_json(item) for item in items]


class EventCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/events"

    def list(self, *, limit: int) -> Flow[list[Event]]:
        """The newest ``limit`` events, newest first."""
        items = yield from first_items(self._session, Call("GET", self._path), limit=limit)
        return [Event.from_json(item) for item in items]

    def open(self, *, after: int | None) -> Flow[httpx.Response]:
        """The live stream, its body unread: from now, or after the event ``after``
        (sent as ``Last-Event-ID``, as a reconnecting ``EventSource`` does)."""
        headers = {"Accept": "text/event-stream"}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        return (
            yield from self._session.request(Call("GET", self._path, headers=headers, stream=True))
        )


@dataclass(frozen=True)
class ServerSentEvent:
    """One message of a server-sent event stream, as the standard frames it."""

    id: str | None
    event: str
    data: str


class EventStreamReader:
    """Reads the lines of a ``text/event-stream`` into messages: ``field: value`` lines
    up to a blank one; comments (``:``) ignored, ``retry:`` kept as the reconnect delay.
    ``last_event_id`` is what a reconnect resumes after."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_seconds = DEFAULT_RECONNECT_SECONDS
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Takes one line (without its end); the message it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_seconds = int(value) / 1000
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        data, event = self._data, self._event or "message"
        self._data, self._event, self._id = [], "", None
        if not data:
            return None
        return ServerSentEvent(id=self.last_event_id, event=event, data="\n".join(data))


def project_event(message: ServerSentEvent) -> Event:
    """A project's event from its stream's message (whose data is the list's item)."""
    return Event.from_json(json.loads(message.data))
