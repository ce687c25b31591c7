"""Response bodies of the catalog endpoints."""

from __future__ import annotations

from decimal import Decimal
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

HOURS_PER_MONTH = Decimal(730)

T = TypeVar("T")


class RegionOut(BaseModel):
    name: str
    display_name: str


class SizeOut(BaseModel):
    name: str
    vcpus: int
    memory_mib: int
    price_per_hour_usd: Decimal
    price_per_month_usd: Decimal = Field(description="730 hours at the hourly price.")


class ImageOut(BaseModel):
    name: str
    display_name: str


class DatabaseSizeOut(BaseModel):
    name: str
    vcpus: int
    memory_mib: int
    price_per_hour_usd: Decimal
    price_per_month_usd: Decimal = Field(description="730 hours at the hourly price.")


class DatabaseEngineOut(BaseModel):
    version: str = Field(description="The PostgreSQL major version to ask for.")
    display_name: str


class PriceOut(BaseModel):
    """A price of the catalog, and the usage meter it applies to (see docs/usage.md)."""

    resource_type: Literal["instance", "database", "bucket", "database_snapshot", "project"]
    meter: Literal[
        "instance",
        "database",
        "database_storage",
        "snapshot_storage",
        "bucket_storage",
        "api_requests",
    ]
    size: str | None = Field(description="The size it prices; null for storage and requests.")
    unit: Literal["hour", "GiB-month", "million requests"]
    price_usd: Decimal


class CatalogList(BaseModel, Generic[T]):
    """A whole catalog list: short and fixed, so ``next_cursor`` is always null."""

    provider: str
    items: list[T]
    next_cursor: None = None
