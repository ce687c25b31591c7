"""Platform metrics in the Prometheus text format: the process's metrics, the HTTP
middleware that counts requests by route template, the job queue read at scrape time,
and the small HTTP server a separate ``lariba worker`` exposes them on.

Every metric lives in ``REGISTRY``, one per process, owned by Lariba rather than
prometheus-client's global default registry: a metric object is declared once at import,
so the several apps a test process builds share it without a "duplicated timeseries"
error, and the exposition holds only what docs/operations.md documents (nothing an
imported library registers by itself). What one process did is one set of series, as
Prometheus expects of one scrape target; tests compare values before and after.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

# The Prometheus text format 0.0.4: what every Prometheus version scrapes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# No ``*_created`` series beside each counter and histogram: they double the output, and
# Prometheus reads the 0.0.4 text format's ones as plain gauges nobody asked for. The
# switch is process-wide, like REGISTRY.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

UNMATCHED_ROUTE = "<unmatched>"
# Any other method (a scanner's PROPFIND) is one label value: label values must stay few.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "lariba_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "lariba_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
RECONCILE_PASS_DURATION = Histogram(
    "lariba_reconcile_pass_duration_seconds",
    "Length of one reconcile pass over one resource, by resource kind and outcome.",
    ["kind", "outcome"],
    # Passes wait on the provider: from a few milliseconds to a slow cloud API's minute.
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "lariba_provider_errors_total",
    "Failures a cloud provider reported, by provider, error code and whether a retry can help.",
    ["provider", "code", "retriable"],
    registry=REGISTRY,
)
LOGIN_FAILURES = Counter(
    "lariba_login_failures_total",
    "Refused logins, by reason.",
    ["reason"],
    registry=REGISTRY,
)


def route_template(scope: Scope) -> str | None:
    """The template of the route that answered (``/v1/projects/{project_id}``), never the
    raw path: one series per route, whatever ids the requests carry. None when no route
    answered."""
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else None


class _RouteTable:
    """Finds the template of a path that no route was given (a middleware answered first,
    as the body size limit does with a 413), from the app's OpenAPI paths: FastAPI nests
    included routers, and its OpenAPI document is the public flat list of them."""

    def __init__(self) -> None:
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    def template(self, scope: Scope) -> str | None:
        if self._patterns is None:
            app = scope.get("app")
            openapi = getattr(app, "openapi", None)
            paths = openapi()["paths"] if callable(openapi) else {}
            self._patterns = [(compile_path(path)[0], path) for path in paths]
        return next((path for regex, path in self._patterns if regex.match(scope["path"])), None)


class HttpMetricsMiddleware:
    """Counts and times every HTTP request but the scrapes themselves. It only touches
    in-memory counters: no database work per request."""

    def __init__(self, app: ASGIApp, *, exclude_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.exclude_paths = exclude_paths
        self._routes = _RouteTable()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes the app becomes a 500 further out

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = route_template(scope)
            if route is None and status != 404:
                route = self._routes.template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            labels = (route or UNMATCHED_ROUTE, method, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)


@dataclass(frozen=True)
class QueueCount:
    """Jobs of one task in one state, and how long the oldest has been in it."""

    queue: str
    task: str
    status: str
    jobs: int
    oldest_age_seconds: float


# ``todo`` jobs not yet due (a backoff, a periodic job's next run) are "scheduled": they
# are not a backlog. A waiting job's age counts from when it became due, a running
# one's from when it started (procrastinate's job events).
_QUEUE_SQL = text(
    """
    SELECT j.queue_name,
           j.task_name,
           CASE WHEN j.status = 'todo' AND j.scheduled_at > now() THEN 'scheduled'
                ELSE j.status::text END AS state,
           count(*) AS jobs,
           coalesce(max(extract(epoch FROM now() - CASE
               WHEN j.status = 'doing' THEN
                   (SELECT max(e.at) FROM procrastinate_events e
                    WHERE e.job_id = j.id AND e.type = 'started')
               WHEN j.scheduled_at > now() THEN NULL
               ELSE greatest(j.scheduled_at,
                   (SELECT max(e.at) FROM procrastinate_events e
                    WHERE e.job_id = j.id
                      AND e.type IN ('deferred', 'deferred_for_retry', 'retried')))
           END)), 0) AS oldest_age_seconds
    FROM procrastinate_jobs j
    WHERE j.status IN ('todo', 'doing')
    GROUP BY 1, 2, 3
    """
)
QUEUE_STATES = ("todo", "scheduled", "doing")


async def read_job_queue(engine: AsyncEngine, *, timeout_seconds: float) -> list[QueueCount]:
    """The job queue's counts now. Raises TimeoutError past ``timeout_seconds`` (the
    statement is cancelled server-side too), so a slow database never hangs a scrape."""
    async with asyncio.timeout(timeout_seconds), engine.connect() as connection:
        # SET LOCAL takes no bind parameters: the value is a number we format.
        millis = max(1, int(timeout_seconds * 1000))
        await connection.execute(text(f"SET LOCAL statement_timeout = {millis}"))
        rows = (await connection.execute(_QUEUE_SQL)).all()
    return [
        QueueCount(
            queue=str(row.queue_name),
            task=str(row.task_name),
            status=str(row.state),
            jobs=int(row.jobs),
            oldest_age_seconds=max(0.0, float(row.oldest_age_seconds)),
        )
        for row in rows
    ]


class JobQueueSnapshot(Collector):
    """The job queue as read for one scrape. ``tasks`` (queue, task) are reported at zero
    when they have no job, so an alert on them sees a series rather than none."""

    def __init__(
        self, counts: Sequence[QueueCount] | None, *, tasks: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.counts = counts
        self.tasks = tuple(tasks)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "lariba_job_queue_up",
            "1 when this scrape could read the job queue from PostgreSQL in time, else 0.",
        )
        up.add_metric([], 0 if self.counts is None else 1)
        yield up
        if self.counts is None:
            return  # no series rather than zeros that would look like an empty queue
        labels = ["queue", "task", "status"]
        jobs = GaugeMetricFamily(
            "lariba_job_queue_jobs",
            "Jobs waiting (todo: due; scheduled: due later) or running (doing).",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "lariba_job_queue_oldest_age_seconds",
            "Seconds the oldest job has been waiting since it became due (todo) or "
            "running (doing); 0 with no job.",
            labels=labels,
        )
        seen: dict[tuple[str, str, str], QueueCount] = {
            (count.queue, count.task, count.status): count for count in self.counts
        }
        for queue, task in self.tasks:
            for state in QUEUE_STATES:
                seen.setdefault((queue, task, state), QueueCount(queue, task, state, 0, 0.0))
        for key in sorted(seen):
            count = seen[key]
            jobs.add_metric(list(key), count.jobs)
            oldest.add_metric(list(key), count.oldest_age_seconds)
        yield jobs
        yield oldest


def exposition(*extra: Collector) -> bytes:
    """The process's metrics, and ``extra`` ones read for this scrape only."""
    scrape = CollectorRegistry(auto_describe=False)
    for collector in extra:
        scrape.register(collector)
    return generate_latest(REGISTRY) + generate_latest(scrape)


@dataclass
class MetricsServer:
    """The ``/metrics`` server of a process without the API (``lariba worker``)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(*, host: str, port: int) -> MetricsServer:
    """Serves ``REGISTRY`` on ``http://host:port/metrics`` from a background thread
    (``port`` 0: a free one, see ``MetricsServer.port``)."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    log.info("metrics_server_started", host=host, port=int(server.server_port))
    return MetricsServer(server=server, thread=thread)
