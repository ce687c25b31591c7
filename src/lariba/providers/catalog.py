"""The catalog: the regions, sizes and images a provider offers, with prices, and the
sizes and engine versions of its managed databases.

Each provider ships defaults (``catalogs/<provider>.toml``); an operator's file
(``LARIBA_CATALOG_FILE``) replaces any section it defines. Sizes and images have a
Lariba name users choose from and a provider mapping (``provider``: an EC2 instance
type, AMI lookup, or local limits) that only the provider reads.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"


class CatalogError(ValueError):
    """The catalog file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Region:
    name: str
    display_name: str


@dataclass(frozen=True)
class Size:
    name: str
    vcpus: int
    memory_mib: int
    price_per_hour_usd: Decimal
    provider: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Image:
    name: str
    display_name: str
    provider: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class DatabaseSize:
    """A managed database's size; ``provider`` maps it (an RDS instance class, a local
    connection limit)."""

    name: str
    vcpus: int
    memory_mib: int
    price_per_hour_usd: Decimal
    provider: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class DatabaseEngine:
    """A PostgreSQL major version users may ask for."""

    version: str
    display_name: str
    provider: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class StoragePrices:
    """What a GiB stored for a month (730 hours) costs: bucket objects, a database's
    allocated storage, and database snapshots."""

    bucket_gib_month_usd: Decimal = Decimal(0)
    database_gib_month_usd: Decimal = Decimal(0)
    snapshot_gib_month_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class Catalog:
    provider_name: str
    regions: tuple[Region, ...]
    sizes: tuple[Size, ...]
    images: tuple[Image, ...]
    # Optional sections: a provider without databases has none.
    database_sizes: tuple[DatabaseSize, ...] = ()
    database_engines: tuple[DatabaseEngine, ...] = ()
    storage_prices: StoragePrices = StoragePrices()
    # What a million API requests made within a project cost.
    request_price_per_million_usd: Decimal = Decimal(0)

    def region(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)

    def size(self, name: str) -> Size | None:
        return next((s for s in self.sizes if s.name == name), None)

    def image(self, name: str) -> Image | None:
        return next((i for i in self.images if i.name == name), None)

    def database_size(self, name: str) -> DatabaseSize | None:
        return next((s for s in self.database_sizes if s.name == name), None)

    def database_engine(self, version: str) -> DatabaseEngine | None:
        return next((e for e in self.database_engines if e.version == version), None)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc}") from exc


def _build(provider_name: str, data: dict[str, Any], source: str) -> Catalog:
    try:
        regions = tuple(
            Region(name=r["name"], display_name=r.get("display_name", r["name"]))
            for r in data["regions"]
        )
        sizes = tuple(
            Size(
                name=s["name"],
                vcpus=int(s["vcpus"]),
                memory_mib=int(s["memory_mib"]),
                price_per_hour_usd=Decimal(str(s["price_per_hour_usd"])),
                provider=dict(s.get("provider", {})),
            )
            for s in data["sizes"]
        )
        images = tuple(
            Image(
                name=i["name"],
                display_name=i.get("display_name", i["name"]),
                provider=dict(i.get("provider", {})),
            )
            for i in data["images"]
        )
        database_sizes = tuple(
            DatabaseSize(
                name=s["name"],
                vcpus=int(s["vcpus"]),
                memory_mib=int(s["memory_mib"]),
                price_per_hour_usd=Decimal(str(s["price_per_hour_usd"])),
                provider=dict(s.get("provider", {})),
            )
            for s in data.get("database_sizes", [])
        )
        database_engines = tuple(
            DatabaseEngine(
                version=str(e["version"]),
                display_name=e.get("display_name", f"PostgreSQL {e['version']}"),
                provider=dict(e.get("provider", {})),
            )
            for e in data.get("database_engines", [])
        )
        storage = data.get("storage_prices", {})
        known = {f.name for f in fields(StoragePrices)}
        storage_prices = StoragePrices(
            **{name: Decimal(str(price)) for name, price in storage.items() if name in known}
        )
        unknown = set(storage) - known
        if unknown:
            raise ValueError(f"unknown storage price {sorted(unknown)[0]!r}")
        request_price = Decimal(str(data.get("request_prices", {}).get("per_million_usd", 0)))
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise CatalogError(f"catalog {source} is malformed: {exc!r}") from exc
    for kind, items in (("region", regions), ("size", sizes), ("image", images)):
        names = [item.name for item in items]
        if not names:
            raise CatalogError(f"catalog {source} defines no {kind}")
        if len(set(names)) != len(names):
            raise CatalogError(f"catalog {source} defines a {kind} name twice")
    for kind, names in (
        ("database size", [s.name for s in database_sizes]),
        ("database engine", [e.version for e in database_engines]),
    ):
        if len(set(names)) != len(names):
            raise CatalogError(f"catalog {source} defines a {kind} twice")
    return Catalog(
        provider_name=provider_name,
        regions=regions,
        sizes=sizes,
        images=images,
        database_sizes=database_sizes,
        database_engines=database_engines,
        storage_prices=storage_prices,
        request_price_per_million_usd=request_price,
    )


def load_catalog(provider_name: str, override: Path | None = None) -> Catalog:
    """The provider's built-in catalog, with the sections of ``override`` in place of its own."""
    defaults = CATALOG_DIR / f"{provider_name}.toml"
    data = _read(defaults)
    source = str(defaults)
    if override is not None:
        data = {**data, **_read(override)}
        source = f"{defaults} + {override}"
    return _build(provider_name, data, source)
