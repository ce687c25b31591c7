"""The local provider assembled from its parts, as the settings say."""

from __future__ import annotations

from lariba.core.settings import Environment, Settings
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
from lariba.providers.local.compute import LocalCompute
from lariba.providers.local.database import LocalDatabases, embedded_cluster, operator_cluster
from lariba.providers.local.database_server import DatabaseServer
from lariba.providers.local.metrics import LocalMetrics
from lariba.providers.local.storage import LocalStorage, url_signing_key


def local_compute_enabled(settings: Settings) -> bool:
    """LARIBA_LOCAL_COMPUTE_ENABLED, or, unset, on in development and off in production."""
    if settings.local_compute_enabled is not None:
        return settings.local_compute_enabled
    return settings.env is Environment.development


def local_databases(settings: Settings) -> LocalDatabases:
    """On the operator's server (LARIBA_LOCAL_DATABASES_URL), else on Lariba's own, started
    with a TCP listener on first use."""
    if settings.local_databases_url:
        cluster = operator_cluster(settings.local_databases_url)
    else:
        server = DatabaseServer(
            settings.data_dir / "databases-server",
            host=settings.local_databases_host,
            port=settings.local_databases_port or None,
        )
        cluster = embedded_cluster(server)
    return LocalDatabases(
        catalog=load_catalog("local", settings.catalog_file),
        cluster=cluster,
        snapshots_dir=settings.data_dir / "database-snapshots",
        protect_server_databases=not settings.local_databases_url,
    )


def local_provider(settings: Settings) -> Provider:
    catalog = load_catalog("local", settings.catalog_file)
    compute = LocalCompute(
        catalog=catalog,
        root=settings.data_dir / "instances",
        enabled=local_compute_enabled(settings),
    )
    return Provider(
        name="local",
        compute=compute,
        storage=LocalStorage(
            root=settings.data_dir / "buckets",
            signing_key=url_signing_key(settings.master_key),
            base_url=settings.base_url,
            min_part_bytes=settings.local_storage_min_part_bytes,
        ),
        database=local_databases(settings),
        metrics=LocalMetrics(
            compute=compute,
            catalog=catalog,
            cpu_window_seconds=settings.metrics_local_cpu_window_seconds,
        ),
    )
