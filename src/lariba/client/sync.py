"""``Client``: the Lariba Cloud API from ordinary (blocking) Python code."""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Generator, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from lariba.client import api, databases, monitoring, storage
from lariba.client.models import (
    AlertRule,
    AlertSource,
    AlertStateChange,
    AuditEvent,
    Bucket,
    Budget,
    CostReport,
    Database,
    DatabaseCreation,
    DatabaseCredentials,
    Event,
    FirewallRule,
    Instance,
    Listing,
    LogEntry,
    Operation,
    Project,
    StoredObject,
    Tokens,
    UsageReport,
    User,
)
from lariba.client.session import (
    DEFAULT_MAX_RETRY_WAIT_SECONDS,
    DEFAULT_RETRIES,
    Call,
    Download,
    Flow,
    Pause,
    Session,
    Step,
)
from lariba.client.transport import (
    DEFAULT_TIMEOUT_SECONDS,
    DOWNLOAD_CHUNK_BYTES,
    USER_AGENT,
    http_request,
    unreachable,
)

T = TypeVar("T")


class Client:
    """A connection to Lariba Cloud at ``base_url``, authenticated with ``token`` (an
    access token or an ``lrb_...`` API key, with its ``refresh_token`` if you have one) or
    by logging in with ``email``/``password`` (and ``otp`` for two-factor accounts) on the
    first call that needs it. A request answered 429 or 503 is sent again after the
    ``Retry-After`` the server gives (each wait at most ``max_retry_wait`` seconds), up
    to ``retries`` times, before its error is raised."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        email: str | None = None,
        password: str | None = None,
        otp: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        retries: int = DEFAULT_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT_SECONDS,
    ) -> None:
        self._session = Session(
            token=token,
            refresh_token=refresh_token,
            email=email,
            password=password,
            otp=otp,
            retries=retries,
            max_retry_wait=max_retry_wait,
        )
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self.projects = Projects(self)

    @property
    def tokens(self) -> Tokens | None:
        """The tokens in use (after a login or refresh, the new ones); None before login."""
        return self._session.tokens

    def log_in(self) -> Tokens:
        """Logs in with the client's email and password now rather than on first use."""
        return self._run(self._session.log_in())

    def sign_up(self, *, email: str, password: str, display_name: str | None = None) -> User:
        """Creates an account (needs no credentials)."""
        return self._run(
            api.sign_up(self._session, email=email, password=password, display_name=display_name)
        )

    def me(self) -> User:
        return self._run(api.me(self._session))

    def log_out(self) -> None:
        """Ends this session on the server: its tokens stop working."""
        self._run(api.log_out(self._session))

    def instances(self, project_id: str) -> Instances:
        return Instances(self, project_id)

    def operations(self, project_id: str) -> Operations:
        return Operations(self, project_id)

    def buckets(self, project_id: str) -> Buckets:
        return Buckets(self, project_id)

    def objects(self, project_id: str, bucket_id: str) -> Objects:
        return Objects(self, project_id, bucket_id)

    def databases(self, project_id: str) -> Databases:
        return Databases(self, project_id)

    def usage(self, project_id: str) -> Usage:
        return Usage(self, project_id)

    def cost(self, project_id: str) -> Cost:
        return Cost(self, project_id)

    def logs(self, project_id: str) -> Logs:
        return Logs(self, project_id)

    def audit(self, project_id: str) -> Audit:
        return Audit(self, project_id)

    def alerts(self, project_id: str) -> Alerts:
        return Alerts(self, project_id)

    def events(self, project_id: str) -> Events:
        return Events(self, project_id)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, flow: Flow[T]) -> T:
        reply: httpx.Response | None = None
        failure: Exception | None = None
        try:
            while True:
                step = flow.send(reply) if failure is None else flow.throw(failure)
                reply, failure = None, None
                try:
                    reply = self._carry_out(step)
                except Exception as exc:
                    # The flow decides: it may clean up (abort an upload) before raising.
                    failure = exc
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            # A flow cut short (interrupted, cancelled) still runs its cleanup (a refresh
            # in progress is released).
            flow.close()

    def _carry_out(self, step: Step) -> httpx.Response | None:
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return None
        call = step.call if isinstance(step, Download) else step
        try:
            request = http_request(self._http, call)
            if isinstance(step, Call):
                if not step.stream:
                    return self._http.send(request)
                response = self._http.send(request, stream=True)
                if response.is_error:
                    response.read()
                return response
            response = self._http.send(request, stream=True)
            try:
                if response.is_error:
                    response.read()
                else:
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                        step.write(chunk)
            finally:
                response.close()
            return response
        except httpx.TransportError as exc:
            raise unreachable(self._http, call, exc) from exc


class Projects:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = api.ProjectCalls(client._session)

    def list(self) -> list[Project]:
        return self._client._run(self._calls.list())

    def create(self, name: str, description: str | None = None) -> Project:
        return self._client._run(self._calls.create(name, description))

    def get(self, project_id: str) -> Project:
        return self._client._run(self._calls.get(project_id))

    def delete(self, project_id: str) -> None:
        self._client._run(self._calls.delete(project_id))


class Instances:
    """The instances of one project."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = api.InstanceCalls(client._session, project_id)

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        label: str | Iterable[str] | None = None,
        page_size: int | None = None,
    ) -> list[Instance]:
        """Every matching instance (all pages). ``label`` is ``key=value`` or ``key``."""
        return self._client._run(self._calls.list(status=status, label=label, page_size=page_size))

    def create(
        self,
        *,
        name: str,
        size: str,
        image: str,
        region: str | None = None,
        user_data: str | None = None,
        ssh_public_key: str | None = None,
        firewall: Iterable[FirewallRule] = (),
        public_ip: bool = False,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str | uuid.UUID | None = None,
    ) -> Operation:
        """Starts creating an instance; the operation's ``resource_id`` is its id."""
        return self._client._run(
            self._calls.create(
                name=name,
                size=size,
                image=image,
                region=region,
                user_data=user_data,
                ssh_public_key=ssh_public_key,
                firewall=firewall,
                public_ip=public_ip,
                labels=labels,
                idempotency_key=str(idempotency_key) if idempotency_key else None,
            )
        )

    def get(self, instance_id: str) -> Instance:
        return self._client._run(self._calls.get(instance_id))

    def start(self, instance_id: str) -> Operation:
        return self._action(instance_id, "start")

    def stop(self, instance_id: str) -> Operation:
        return self._action(instance_id, "stop")

    def reboot(self, instance_id: str) -> Operation:
        return self._action(instance_id, "reboot")

    def resize(self, instance_id: str, size: str) -> Operation:
        return self._action(instance_id, "resize", {"size": size})

    def delete(self, instance_id: str) -> Operation:
        return self._client._run(self._calls.delete(instance_id))

    def console(self, instance_id: str) -> str:
        return self._client._run(self._calls.console(instance_id))

    def _action(self, instance_id: str, action: str, body: Any = None) -> Operation:
        return self._client._run(self._calls.action(instance_id, action, body))


class Operations:
    """The operations of one project."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = api.OperationCalls(client._session, project_id)

    def get(self, operation_id: str) -> Operation:
        return self._client._run(self._calls.get(operation_id))

    def wait(
        self,
        operation: Operation | str,
        *,
        timeout: float = 300,
        poll: float = 1.0,
        on_progress: api.ProgressCallback | None = None,
    ) -> Operation:
        """Polls every ``poll`` seconds until the operation succeeds and returns it; raises
        ``OperationFailed`` if it fails, ``OperationTimeout`` after ``timeout`` seconds.
        ``on_progress`` is called with the operation whenever its status or progress
        changes."""
        return self._client._run(
            self._calls.wait(operation, timeout=timeout, poll=poll, on_progress=on_progress)
        )


class Buckets:
    """The buckets of one project."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = storage.BucketCalls(client._session, project_id)

    def list(self) -> list[Bucket]:
        return self._client._run(self._calls.list())

    def create(
        self,
        name: str,
        *,
        region: str | None = None,
        versioning: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> Operation:
        """Starts creating a bucket; the operation's ``resource_id`` is its id."""
        return self._client._run(
            self._calls.create(name, region=region, versioning=versioning, labels=labels)
        )

    def get(self, bucket_id: str) -> Bucket:
        return self._client._run(self._calls.get(bucket_id))

    def delete(self, bucket_id: str, *, force: bool = False) -> Operation:
        """Refused (``bucket_not_empty``) while it holds objects, unless ``force``."""
        return self._client._run(self._calls.delete(bucket_id, force=force))


class Objects:
    """The objects of one bucket."""

    def __init__(self, client: Client, project_id: str, bucket_id: str) -> None:
        self._client = client
        self._calls = storage.ObjectCalls(client._session, project_id, bucket_id)

    def list(
        self,
        prefix: str | None = None,
        delimiter: str | None = None,
        *,
        page_size: int | None = None,
    ) -> Listing:
        """Every object under ``prefix`` (all pages), in key order; with a ``delimiter``
        (usually ``/``) deeper keys are rolled up into the listing's ``prefixes``."""
        return self._client._run(
            self._calls.list(prefix=prefix, delimiter=delimiter, page_size=page_size)
        )

    def head(self, key: str) -> StoredObject:
        return self._client._run(self._calls.head(key))

    def delete(self, key: str) -> None:
        """Deleting a missing key succeeds."""
        self._client._run(self._calls.delete(key))

    def upload(
        self,
        key: str,
        source: storage.Source,
        *,
        content_type: str | None = None,
        part_size: int = storage.DEFAULT_PART_SIZE,
        on_progress: storage.TransferProgress | None = None,
    ) -> StoredObject:
        """Uploads a path or seekable binary file (from its current position), in parts
        of ``part_size`` bytes when it is bigger; ``on_progress(done, total)`` follows."""
        return self._client._run(
            self._calls.upload(
                key, source, content_type=content_type, part_size=part_size, on_progress=on_progress
            )
        )

    def download(
        self,
        key: str,
        destination: storage.Destination,
        *,
        on_progress: storage.TransferProgress | None = None,
    ) -> StoredObject:
        """Streams the object to a path or binary file; ``on_progress(done, total)``."""
        return self._client._run(self._calls.download(key, destination, on_progress=on_progress))


class Databases:
    """The databases of one project."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = databases.DatabaseCalls(client._session, project_id)

    def list(self) -> list[Database]:
        return self._client._run(self._calls.list())

    def create(
        self,
        name: str,
        *,
        size: str,
        storage_gb: int,
        engine_version: str | None = None,
        region: str | None = None,
        deletion_protection: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> DatabaseCreation:
        """Starts creating a database: the ``create`` operation, with the
        ``credentials`` shown this once."""
        return self._client._run(
            self._calls.create(
                name,
                size=size,
                storage_gb=storage_gb,
                engine_version=engine_version,
                region=region,
                deletion_protection=deletion_protection,
                labels=labels,
            )
        )

    def get(self, database_id: str) -> Database:
        return self._client._run(self._calls.get(database_id))

    def reveal(self, database_id: str) -> DatabaseCredentials:
        """Its connection details with the password (needs the ``admin`` role; audited)."""
        return self._client._run(self._calls.reveal(database_id))

    def delete(self, database_id: str, *, final_snapshot: bool = False) -> Operation:
        return self._client._run(self._calls.delete(database_id, final_snapshot=final_snapshot))


class Usage:
    """What one project used."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.UsageCalls(client._session, project_id)

    def report(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        group_by: str | Iterable[str] | None = None,
    ) -> UsageReport:
        """Usage per meter and sku from ``start`` (inclusive; default: the start of this
        UTC month) to ``end`` (exclusive; default and latest: now), further grouped by
        ``day``, ``resource`` and/or ``resource_kind``."""
        return self._client._run(self._calls.report(start=start, end=end, group_by=group_by))


class Cost:
    """What one project cost, its forecast and its budget."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.CostCalls(client._session, project_id)

    def report(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        group_by: str | Iterable[str] | None = None,
    ) -> CostReport:
        """Cost grouped by any of ``day``, ``resource``, ``resource_kind`` (the default)
        and ``meter``, with the total and this month's forecast."""
        return self._client._run(self._calls.report(start=start, end=end, group_by=group_by))

    def export(
        self,
        destination: storage.Destination,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
    ) -> None:
        """Streams the FOCUS CSV (one row per resource, meter and sku per UTC day) to a
        path or binary file."""
        self._client._run(self._calls.export(destination, start=start, end=end))

    def budget(self) -> Budget:
        """The monthly budget; ``NotFound`` (``budget_not_set``) without one."""
        return self._client._run(self._calls.budget())

    def set_budget(
        self,
        amount_usd: Decimal | str,
        *,
        thresholds: Iterable[int] | None = None,
        block_provisioning: bool = False,
    ) -> Budget:
        """Sets (or replaces) the monthly budget; ``thresholds`` are percentages of the
        amount to be notified at (default 50, 80, 100)."""
        return self._client._run(
            self._calls.set_budget(
                amount_usd=amount_usd, thresholds=thresholds, block=block_provisioning
            )
        )

    def delete_budget(self) -> None:
        self._client._run(self._calls.delete_budget())


class Logs:
    """The logs of one project's resources."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.LogCalls(client._session, project_id)

    def get(self, resource_id: str) -> list[LogEntry]:
        """The resource's operations and events, oldest first (all pages)."""
        return self._client._run(self._calls.get(resource_id))

    def follow(self, resource_id: str, *, poll: float = 2.0) -> Generator[LogEntry, None, None]:
        """The resource's log, then each new entry as it comes: the log is read again
        every ``poll`` seconds, and an operation is given again when its status moves
        on. Never ends by itself: stop iterating (or Ctrl-C) to stop."""
        follower = monitoring.LogFollower()
        while True:
            yield from follower.new(self.get(resource_id))
            time.sleep(poll)


class Audit:
    """One project's audit log (needs the ``admin`` role)."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.AuditCalls(client._session, project_id)

    def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        outcome: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """The matching events, newest first: all of them, or the first ``limit``.
        ``action`` is exact, or a prefix ending in a dot (``instance.``)."""
        where = monitoring.AuditFilter(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            start=start,
            end=end,
        )
        return self._client._run(self._calls.list(where, limit=limit))

    def export(
        self,
        destination: storage.Destination,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        outcome: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
    ) -> int:
        """Streams every matching event, oldest first, as JSON lines to a path or binary
        file; returns how many were written."""
        where = monitoring.AuditFilter(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            start=start,
            end=end,
        )
        return self._client._run(self._calls.export(where, destination))


class Alerts:
    """One project's alert rules."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.AlertCalls(client._session, project_id)

    def create(
        self,
        *,
        name: str,
        source: AlertSource,
        comparison: str,
        threshold: Decimal | str | int,
        window: str | None = None,
        enabled: bool = True,
        emails: Iterable[str] = (),
    ) -> AlertRule:
        """A rule alerting while ``value <comparison> threshold``; ``source`` is a
        ``MetricSource`` or a ``CostSource``."""
        return self._client._run(
            self._calls.create(
                name=name,
                source=source,
                comparison=comparison,
                threshold=threshold,
                window=window,
                enabled=enabled,
                emails=emails,
            )
        )

    def list(self) -> list[AlertRule]:
        return self._client._run(self._calls.list())

    def get(self, alert_id: str) -> AlertRule:
        return self._client._run(self._calls.get(alert_id))

    def update(
        self,
        alert_id: str,
        *,
        name: str = monitoring.UNCHANGED,
        source: AlertSource = monitoring.UNCHANGED,
        comparison: str = monitoring.UNCHANGED,
        threshold: Decimal | str | int = monitoring.UNCHANGED,
        window: str | None = monitoring.UNCHANGED,
        enabled: bool = monitoring.UNCHANGED,
        emails: Iterable[str] = monitoring.UNCHANGED,
    ) -> AlertRule:
        """Changes only the fields given; the rule keeps its state."""
        changes = {
            "name": name,
            "source": source,
            "comparison": comparison,
            "threshold": threshold,
            "window": window,
            "enabled": enabled,
            "emails": emails,
        }
        return self._client._run(self._calls.update(alert_id, changes))

    def delete(self, alert_id: str) -> None:
        """Deletes the rule and its history."""
        self._client._run(self._calls.delete(alert_id))

    def history(self, alert_id: str) -> builtins.list[AlertStateChange]:
        """The rule's state changes, newest first."""
        return self._client._run(self._calls.history(alert_id))


class Events:
    """The status changes of one project's resources, past and live."""

    def __init__(self, client: Client, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.EventCalls(client._session, project_id)

    def list(self, *, limit: int = 50) -> list[Event]:
        """The newest ``limit`` events, newest first."""
        return self._client._run(self._calls.list(limit=limit))

    def stream(
        self, *, after: int | None = None, reconnect: bool = True
    ) -> Generator[Event, None, None]:
        """Each event as it happens (server-sent events): from now, or after the event
        ``after`` (0: the whole history first). When the connection drops or the server
        ends the stream, it reconnects after the server's ``retry`` delay with
        ``Last-Event-ID``, so nothing is missed or repeated (``reconnect=False``: it
        ends instead). Never ends by itself: stop iterating (or Ctrl-C) to stop."""
        last = after
        while True:
            reader = monitoring.EventStreamReader()
            response = self._client._run(self._calls.open(after=last))
            try:
                for line in response.iter_lines():
                    message = reader.feed(line)
                    if message is not None:
                        event = monitoring.project_event(message)
                        last = event.id
                        yield event
            except httpx.TransportError:
                pass  # dropped: resume after the last event
            finally:
                response.close()
            if not reconnect:
                return
            time.sleep(reader.retry_seconds)
