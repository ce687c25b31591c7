"""The catalog: the regions, sizes and images a provider offers, with prices.

Each provider ships defaults (``catalogs/<provider>.toml``); an operator's file
(``LARIBA_CATALOG_FILE``) replaces any section it defines. Sizes and images have a
Lariba name users choose from and a provider mapping (``provider``: an EC2 instance
type, AMI lookup, or local limits) that only the provider reads.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
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
class Catalog:
    provider_name: str
    regions: tuple[Region, ...]
    sizes: tuple[Size, ...]
    images: tuple[Image, ...]

    def region(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)

    def size(self, name: str) -> Size | None:
        return next((s for s in self.sizes if s.name == name), None)

    def image(self, name: str) -> Image | None:
        return next((i for i in self.images if i.name == name), None)


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
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise CatalogError(f"catalog {source} is malformed: {exc!r}") from exc
    for kind, items in (("region", regions), ("size", sizes), ("image", images)):
        names = [item.name for item in items]
        if not names:
            raise CatalogError(f"catalog {source} defines no {kind}")
        if len(set(names)) != len(names):
            raise CatalogError(f"catalog {source} defines a {kind} name twice")
    return Catalog(provider_name=provider_name, regions=regions, sizes=sizes, images=images)


def load_catalog(provider_name: str, override: Path | None = None) -> Catalog:
    """The provider's built-in catalog, with the sections of ``override`` in place of its own."""
    defaults = CATALOG_DIR / f"{provider_name}.toml"
    data = _read(defaults)
    source = str(defaults)
    if override is not None:
        data = {**data, **_read(override)}
        source = f"{defaults} + {override}"
    return _build(provider_name, data, source)
