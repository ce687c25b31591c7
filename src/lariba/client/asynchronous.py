"""``AsyncClient``: the Lariba Cloud API from asyncio code (every call is awaited)."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping
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


class AsyncClient:
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
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self.projects = AsyncProjects(self)

    @property
    def tokens(self) -> Tokens | None:
        """The tokens in use (after a login or refresh, the new ones); None before login."""
        return self._session.tokens

    async def log_in(self) -> Tokens:
        """Logs in with the client's email and password now rather than on first use."""
        return await self._run(self._session.log_in())

    async def sign_up(self, *, email: str, password: str, display_name: str | None = None) -> User:
        """Creates an account (needs no credentials)."""
        return await self._run(
            api.sign_up(self._session, email=email, password=password, display_name=display_name)
        )

    async def me(self) -> User:
        return await self._run(api.me(self._session))

    async def log_out(self) -> None:
        """Ends this session on the server: its tokens stop working."""
        await self._run(api.log_out(self._session))

    def instances(self, project_id: str) -> AsyncInstances:
        return AsyncInstances(self, project_id)

    def operations(self, project_id: str) -> AsyncOperations:
        return AsyncOperations(self, project_id)

    def buckets(self, project_id: str) -> AsyncBuckets:
        return AsyncBuckets(self, project_id)

    def objects(self, project_id: str, bucket_id: str) -> AsyncObjects:
        return AsyncObjects(self, project_id, bucket_id)

    def databases(self, project_id: str) -> AsyncDatabases:
        return AsyncDatabases(self, project_id)

    def usage(self, project_id: str) -> AsyncUsage:
        return AsyncUsage(self, project_id)

    def cost(self, project_id: str) -> AsyncCost:
        return AsyncCost(self, project_id)

    def logs(self, project_id: str) -> AsyncLogs:
        return AsyncLogs(self, project_id)

    def audit(self, project_id: str) -> AsyncAudit:
        return AsyncAudit(self, project_id)

    def alerts(self, project_id: str) -> AsyncAlerts:
        return AsyncAlerts(self, project_id)

    def events(self, project_id: str) -> AsyncEvents:
        return AsyncEvents(self, project_id)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self, flow: Flow[T]) -> T:
        reply: httpx.Response | None = None
        failure: Exception | None = None
        try:
            while True:
                step = flow.send(reply) if failure is None else flow.throw(failure)
                reply, failure = None, None
                try:
                    reply = await self._carry_out(step)
                except Exception as exc:
                    # The flow decides: it may clean up (abort an upload) before raising.
                    failure = exc
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            # A flow cut short (interrupted, cancelled) still runs its cleanup (a refresh
            # in progress is released).
            flow.close()

    async def _carry_out(self, step: Step) -> httpx.Response | None:
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return None
        call = step.call if isinstance(step, Download) else step
        try:
            request = http_request(self._http, call)
            if isinstance(step, Call):
                if not step.stream:
                    return await self._http.send(request)
                response = await self._http.send(request, stream=True)
                if response.is_error:
                    await response.aread()
                return response
            response = await self._http.send(request, stream=True)
            try:
                if response.is_error:
                    await response.aread()
                else:
                    async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK_BYTES):
                        step.write(chunk)
            finally:
                await response.aclose()
            return response
        except httpx.TransportError as exc:
            raise unreachable(self._http, call, exc) from exc


class AsyncProjects:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = api.ProjectCalls(client._session)

    async def list(self) -> list[Project]:
        return await self._client._run(self._calls.list())

    async def create(self, name: str, description: str | None = None) -> Project:
        return await self._client._run(self._calls.create(name, description))

    async def get(self, project_id: str) -> Project:
        return await self._client._run(self._calls.get(project_id))

    async def delete(self, project_id: str) -> None:
        await self._client._run(self._calls.delete(project_id))


class AsyncInstances:
    """The instances of one project."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = api.InstanceCalls(client._session, project_id)

    async def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        label: str | Iterable[str] | None = None,
        page_size: int | None = None,
    ) -> list[Instance]:
        """Every matching instance (all pages). ``label`` is ``key=value`` or ``key``."""
        return await self._client._run(
            self._calls.list(status=status, label=label, page_size=page_size)
        )

    async def create(
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
        return await self._client._run(
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

    async def get(self, instance_id: str) -> Instance:
        return await self._client._run(self._calls.get(instance_id))

    async def start(self, instance_id: str) -> Operation:
        return await self._action(instance_id, "start")

    async def stop(self, instance_id: str) -> Operation:
        return await self._action(instance_id, "stop")

    async def reboot(self, instance_id: str) -> Operation:
        return await self._action(instance_id, "reboot")

    async def resize(self, instance_id: str, size: str) -> Operation:
        return await self._action(instance_id, "resize", {"size": size})

    async def delete(self, instance_id: str) -> Operation:
        return await self._client._run(self._calls.delete(instance_id))

    async def console(self, instance_id: str) -> str:
        return await self._client._run(self._calls.console(instance_id))

    async def _action(self, instance_id: str, action: str, body: Any = None) -> Operation:
        return await self._client._run(self._calls.action(instance_id, action, body))


class AsyncOperations:
    """The operations of one project."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = api.OperationCalls(client._session, project_id)

    async def get(self, operation_id: str) -> Operation:
        return await self._client._run(self._calls.get(operation_id))

    async def wait(
        self,
        operation: Operation | str,
        *,
        # The operation's deadline, polled between requests; same call as Client's.
        timeout: float = 300,  # noqa: ASYNC109
        poll: float = 1.0,
        on_progress: api.ProgressCallback | None = None,
    ) -> Operation:
        """Polls every ``poll`` seconds until the operation succeeds and returns it; raises
        ``OperationFailed`` if it fails, ``OperationTimeout`` after ``timeout`` seconds.
        ``on_progress`` is called with the operation whenever its status or progress
        changes."""
        return await self._client._run(
            self._calls.wait(operation, timeout=timeout, poll=poll, on_progress=on_progress)
        )


class AsyncBuckets:
    """The buckets of one project."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = storage.BucketCalls(client._session, project_id)

    async def list(self) -> list[Bucket]:
        return await self._client._run(self._calls.list())

    async def create(
        self,
        name: str,
        *,
        region: str | None = None,
        versioning: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> Operation:
        """Starts creating a bucket; the operation's ``resource_id`` is its id."""
        return await self._client._run(
            self._calls.create(name, region=region, versioning=versioning, labels=labels)
        )

    async def get(self, bucket_id: str) -> Bucket:
        return await self._client._run(self._calls.get(bucket_id))

    async def delete(self, bucket_id: str, *, force: bool = False) -> Operation:
        """Refused (``bucket_not_empty``) while it holds objects, unless ``force``."""
        return await self._client._run(self._calls.delete(bucket_id, force=force))


class AsyncObjects:
    """The objects of one bucket."""

    def __init__(self, client: AsyncClient, project_id: str, bucket_id: str) -> None:
        self._client = client
        self._calls = storage.ObjectCalls(client._session, project_id, bucket_id)

    async def list(
        self,
        prefix: str | None = None,
        delimiter: str | None = None,
        *,
        page_size: int | None = None,
    ) -> Listing:
        """Every object under ``prefix`` (all pages), in key order; with a ``delimiter``
        (usually ``/``) deeper keys are rolled up into the listing's ``prefixes``."""
        return await self._client._run(
            self._calls.list(prefix=prefix, delimiter=delimiter, page_size=page_size)
        )

    async def head(self, key: str) -> StoredObject:
        return await self._client._run(self._calls.head(key))

    async def delete(self, key: str) -> None:
        """Deleting a missing key succeeds."""
        await self._client._run(self._calls.delete(key))

    async def upload(
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
        return await self._client._run(
            self._calls.upload(
                key, source, content_type=content_type, part_size=part_size, on_progress=on_progress
            )
        )

    async def download(
        self,
        key: str,
        destination: storage.Destination,
        *,
        on_progress: storage.TransferProgress | None = None,
    ) -> StoredObject:
        """Streams the object to a path or binary file; ``on_progress(done, total)``."""
        return await self._client._run(
            self._calls.download(key, destination, on_progress=on_progress)
        )


class AsyncDatabases:
    """The databases of one project."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = databases.DatabaseCalls(client._session, project_id)

    async def list(self) -> list[Database]:
        return await self._client._run(self._calls.list())

    async def create(
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
        return await self._client._run(
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

    async def get(self, database_id: str) -> Database:
        return await self._client._run(self._calls.get(database_id))

    async def reveal(self, database_id: str) -> DatabaseCredentials:
        """Its connection details with the password (needs the ``admin`` role; audited)."""
        return await self._client._run(self._calls.reveal(database_id))

    async def delete(self, database_id: str, *, final_snapshot: bool = False) -> Operation:
        return await self._client._run(
            self._calls.delete(database_id, final_snapshot=final_snapshot)
        )


class AsyncUsage:
    """What one project used."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.UsageCalls(client._session, project_id)

    async def report(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        group_by: str | Iterable[str] | None = None,
    ) -> UsageReport:
        """Usage per meter and sku from ``start`` (inclusive; default: the start of this
        UTC month) to ``end`` (exclusive; default and latest: now), further grouped by
        ``day``, ``resource`` and/or ``resource_kind``."""
        return await self._client._run(self._calls.report(start=start, end=end, group_by=group_by))


class AsyncCost:
    """What one project cost, its forecast and its budget."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.CostCalls(client._session, project_id)

    async def report(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        group_by: str | Iterable[str] | None = None,
    ) -> CostReport:
        """Cost grouped by any of ``day``, ``resource``, ``resource_kind`` (the default)
        and ``meter``, with the total and this month's forecast."""
        return await self._client._run(self._calls.report(start=start, end=end, group_by=group_by))

    async def export(
        self,
        destination: storage.Destination,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
    ) -> None:
        """Streams the FOCUS CSV (one row per resource, meter and sku per UTC day) to a
        path or binary file."""
        await self._client._run(self._calls.export(destination, start=start, end=end))

    async def budget(self) -> Budget:
        """The monthly budget; ``NotFound`` (``budget_not_set``) without one."""
        return await self._client._run(self._calls.budget())

    async def set_budget(
        self,
        amount_usd: Decimal | str,
        *,
        thresholds: Iterable[int] | None = None,
        block_provisioning: bool = False,
    ) -> Budget:
        """Sets (or replaces) the monthly budget; ``thresholds`` are percentages of the
        amount to be notified at (default 50, 80, 100)."""
        return await self._client._run(
            self._calls.set_budget(
                amount_usd=amount_usd, thresholds=thresholds, block=block_provisioning
            )
        )

    async def delete_budget(self) -> None:
        await self._client._run(self._calls.delete_budget())


class AsyncLogs:
    """The logs of one project's resources."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.LogCalls(client._session, project_id)

    async def get(self, resource_id: str) -> list[LogEntry]:
        """The resource's operations and events, oldest first (all pages)."""
        return await self._client._run(self._calls.get(resource_id))

    async def follow(
        self, resource_id: str, *, poll: float = 2.0
    ) -> AsyncGenerator[LogEntry, None]:
        """The resource's log, then each new entry as it comes: the log is read again
        every ``poll`` seconds, and an operation is given again when its status moves
        on. Never ends by itself: stop iterating (or Ctrl-C) to stop."""
        follower = monitoring.LogFollower()
        while True:
            for entry in follower.new(await self.get(resource_id)):
                yield entry
            await asyncio.sleep(poll)


class AsyncAudit:
    """One project's audit log (needs the ``admin`` role)."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.AuditCalls(client._session, project_id)

    async def list(
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
        return await self._client._run(self._calls.list(where, limit=limit))

    async def export(
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
        return await self._client._run(self._calls.export(where, destination))


class AsyncAlerts:
    """One project's alert rules."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.AlertCalls(client._session, project_id)

    async def create(
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
        return await self._client._run(
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

    async def list(self) -> list[AlertRule]:
        return await self._client._run(self._calls.list())

    async def get(self, alert_id: str) -> AlertRule:
        return await self._client._run(self._calls.get(alert_id))

    async def update(
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
        return await self._client._run(self._calls.update(alert_id, changes))

    async def delete(self, alert_id: str) -> None:
        """Deletes the rule and its history."""
        await self._client._run(self._calls.delete(alert_id))

    async def history(self, alert_id: str) -> builtins.list[AlertStateChange]:
        """The rule's state changes, newest first."""
        return await self._client._run(self._calls.history(alert_id))


class AsyncEvents:
    """The status changes of one project's resources, past and live."""

    def __init__(self, client: AsyncClient, project_id: str) -> None:
        self._client = client
        self._calls = monitoring.EventCalls(client._session, project_id)

    async def list(self, *, limit: int = 50) -> list[Event]:
        """The newest ``limit`` events, newest first."""
        return await self._client._run(self._calls.list(limit=limit))

    async def stream(
        self, *, after: int | None = None, reconnect: bool = True
    ) -> AsyncGenerator[Event, None]:
        """Each event as it happens (server-sent events): from now, or after the event
        ``after`` (0: the whole history first). When the connection drops or the server
        ends the stream, it reconnects after the server's ``retry`` delay with
        ``Last-Event-ID``, so nothing is missed or repeated (``reconnect=False``: it
        ends instead). Never ends by itself: stop iterating (or Ctrl-C) to stop."""
        last = after
        while True:
            reader = monitoring.EventStreamReader()
            response = await self._client._run(self._calls.open(after=last))
            try:
                async for line in response.aiter_lines():
                    message = reader.feed(line)
                    if message is not None:
                        event = monitoring.project_event(message)
                        last = event.id
                        yield event
            except httpx.TransportError:
                pass  # dropped: resume after the last event
            finally:
                await response.aclose()
            if not reconnect:
                return
            await asyncio.sleep(reader.retry_seconds)
