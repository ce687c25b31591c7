"""The FastAPI application: shared kit plus the routers of the services it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lariba import __version__
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.cloud.router import router as cloud_router
from lariba.cloud.tasks import cloud_tasks
from lariba.console.router import install_console
from lariba.core import health
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.errors import install_error_handlers
from lariba.core.idempotency import idempotency_tasks, install_idempotency
from lariba.core.jobs import JobQueue, TaskRegistrar
from lariba.core.metrics import HttpMetricsMiddleware
from lariba.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from lariba.core.query import list_query_parameters, refuse_repeated_query_parameters
from lariba.core.responses import document_problems
from lariba.core.settings import Settings
from lariba.core.text import refuse_nul_characters
from lariba.identity.router import router as identity_router
from lariba.identity.runtime import IdentityRuntime
from lariba.monitoring.alerts.tasks import alert_tasks
from lariba.monitoring.audit.server_errors import record_server_error
from lariba.monitoring.audit.tasks import server_error_tasks
from lariba.monitoring.budgets.service import refuse_if_spent
from lariba.monitoring.budgets.tasks import budget_tasks
from lariba.monitoring.metrics.tasks import metrics_tasks
from lariba.monitoring.router import router as monitoring_router
from lariba.monitoring.usage.requests import RequestMeter, RequestMeterMiddleware
from lariba.monitoring.usage.tasks import usage_tasks
from lariba.monitoring.webhooks.tasks import webhook_tasks
from lariba.providers.base import Provider

log = structlog.get_logger(__name__)

DESCRIPTION = """
Lariba Cloud's REST API. Authenticate with **Authorize** (your e-mail and password) or send
`Authorization: Bearer <access token or API key>`. Errors are RFC 9457 problem+json
documents with a stable `code`. Lists are cursor-paginated: pass `next_cursor` back as
`cursor`.
"""


def job_queue(
    settings: Settings, database_url: str, cloud: CloudRuntime, *extra: TaskRegistrar
) -> JobQueue:
    """The job queue with every service's tasks (and ``extra`` ones, for tests)."""
    return JobQueue(
        database_url,
        registrars=(
            cloud_tasks(cloud),
            idempotency_tasks(cloud.sessionmaker),
            server_error_tasks(cloud.sessionmaker, settings),
            usage_tasks(cloud.sessionmaker),
            metrics_tasks(cloud),
            budget_tasks(cloud),
            alert_tasks(cloud),
            webhook_tasks(settings, cloud.sessionmaker),
            *extra,
        ),
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        stalled_after_seconds=settings.job_stalled_after_seconds,
        poll_seconds=min(1.0, settings.reconcile_poll_seconds),
    )


def warm_up(app: FastAPI) -> None:
    """Builds now what the first requests would otherwise wait for: the OpenAPI document,
    the query parameters that take lists (read from it), and FastAPI's routing tables of
    the included routers, which it builds lazily and the document's build fills. About
    0.6 s of CPU that a server's first callers, or a new replica's, no longer pay; and the
    provider's clients (boto3's, about 0.5 s on aws)."""
    list_query_parameters(app)
    runtime: CloudRuntime = app.state.cloud
    runtime.provider.warm_up()


def create_app(
    settings: Settings,
    *,
    database_url: str,
    engine: AsyncEngine | None = None,
    run_worker: bool | None = None,
    task_registrars: Sequence[TaskRegistrar] = (),
    provider: Provider | None = None,
) -> FastAPI:
    """Builds the API. ``database_url`` is resolved by the caller (the CLI starts the
    embedded PostgreSQL when none is configured). ``run_worker`` defaults to
    ``settings.worker_in_process``; ``task_registrars`` add job tasks and ``provider``
    replaces the one named by the settings (tests)."""
    engine = engine or create_engine(settings, database_url)
    sessionmaker = create_sessionmaker(engine)
    cloud = CloudRuntime.create(
        settings, database_url=database_url, sessionmaker=sessionmaker, provider=provider
    )
    cloud.admission_checks.append(refuse_if_spent)
    requests = RequestMeter(sessionmaker)
    jobs = job_queue(settings, database_url, cloud, *task_registrars)
    run_worker = settings.worker_in_process if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await app.state.identity.keyring.load()
        except Exception as exc:  # the API still starts; it answers 503 until the DB is back
            log.warning("signing_keys_not_loaded", error_type=type(exc).__name__)
        await jobs.open()
        requests.start()
        if run_worker:
            jobs.start_worker(concurrency=settings.worker_concurrency)
        try:
            yield
        finally:
            await requests.stop()
            await jobs.close()
            await cloud.close()
            await engine.dispose()

    app = FastAPI(
        title="Lariba Cloud API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        dependencies=[
            Depends(refuse_repeated_query_parameters),
            Depends(refuse_nul_characters),
        ],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.jobs = jobs
    app.state.identity = IdentityRuntime.create(settings, sessionmaker)
    app.state.catalog = cloud.catalog
    app.state.cloud = cloud
    app.state.request_meter = requests

    install_error_handlers(app, on_unexpected=(record_server_error,))
    document_problems(app)
    install_idempotency(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # Object bytes at the local provider's signed URLs: limited by their signature.
        exempt_prefixes=("/v1/storage/",),
    )
    app.add_middleware(RequestMeterMiddleware, meter=requests)
    app.add_middleware(RequestContextMiddleware)
    # Outermost, so it also counts what the inner middleware refuse (413s).
    app.add_middleware(HttpMetricsMiddleware, exclude_paths=frozenset({"/metrics"}))
    app.include_router(health.router)
    app.include_router(identity_router)
    app.include_router(cloud_router)
    app.include_router(monitoring_router)
    install_console(app)
    return app
