"""The meters: what each one measures, the unit it is reported and priced in, and its
prices from the catalog. Which resource states run a meter is decided by the database
trigger that records usage (``lariba_usage_meters``, migration 0008); API requests are
counted by the API processes (``usage.requests``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lariba.providers.catalog import Catalog

SECONDS_PER_HOUR = 3600
HOURS_PER_MONTH = 730
GIB = 2**30


@dataclass(frozen=True)
class Meter:
    name: str
    resource_kind: str
    description: str
    # Reported and priced in ``unit``; recorded in ``metered_unit`` (quantity times seconds),
    # ``per_unit`` of which make one ``unit``.
    unit: str
    metered_unit: str
    per_unit: int
    # FinOps FOCUS ServiceCategory / ServiceName.
    service_category: str
    service_name: str


METERS: dict[str, Meter] = {
    m.name: m
    for m in (
        Meter(
            name="instance",
            resource_kind="instance",
            description="Instance time while running",
            unit="Hours",
            metered_unit="Seconds",
            per_unit=SECONDS_PER_HOUR,
            service_category="Compute",
            service_name="Instances",
        ),
        Meter(
            name="database",
            resource_kind="database",
            description="Database time while available or modifying",
            unit="Hours",
            metered_unit="Seconds",
            per_unit=SECONDS_PER_HOUR,
            service_category="Databases",
            service_name="Databases",
        ),
        Meter(
            name="database_storage",
            resource_kind="database",
            description="A database's allocated storage while it exists",
            unit="GiB-Months",
            metered_unit="GiB-Seconds",
            per_unit=HOURS_PER_MONTH * SECONDS_PER_HOUR,
            service_category="Databases",
            service_name="Databases",
        ),
        Meter(
            name="snapshot_storage",
            resource_kind="database_snapshot",
            description="A database snapshot's storage (its database's allocated size)",
            unit="GiB-Months",
            metered_unit="GiB-Seconds",
            per_unit=HOURS_PER_MONTH * SECONDS_PER_HOUR,
            service_category="Storage",
            service_name="Database snapshots",
        ),
        Meter(
            name="bucket_storage",
            resource_kind="bucket",
            description="Bytes stored in a bucket",
            unit="GiB-Months",
            metered_unit="Byte-Seconds",
            per_unit=GIB * HOURS_PER_MONTH * SECONDS_PER_HOUR,
            service_category="Storage",
            service_name="Buckets",
        ),
        Meter(
            name="api_requests",
            resource_kind="project",
            description="API requests made within the project",
            unit="Million-Requests",
            metered_unit="Requests",
            per_unit=1_000_000,
            service_category="Management and Governance",
            service_name="API",
        ),
    )
}


@dataclass(frozen=True)
class Price:
    meter: str
    sku: str
    unit_price_usd: Decimal


def prices(catalog: Catalog) -> list[Price]:
    """Every (meter, sku) the catalog prices, per ``Meter.unit``."""
    storage = catalog.storage_prices
    return [
        *(Price("instance", s.name, s.price_per_hour_usd) for s in catalog.sizes),
        *(Price("database", s.name, s.price_per_hour_usd) for s in catalog.database_sizes),
        Price("database_storage", "gib", storage.database_gib_month_usd),
        Price("snapshot_storage", "gib", storage.snapshot_gib_month_usd),
        Price("bucket_storage", "bytes", storage.bucket_gib_month_usd),
        Price("api_requests", "requests", catalog.request_price_per_million_usd),
    ]
