"""GET /v1/catalog/...: the provider's regions, sizes, images and prices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from lariba.cloud.catalog.schemas import (
    HOURS_PER_MONTH,
    CatalogList,
    DatabaseEngineOut,
    DatabaseSizeOut,
    ImageOut,
    PriceOut,
    RegionOut,
    SizeOut,
)
from lariba.identity.authn import CurrentPrincipal
from lariba.providers.catalog import Catalog

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])


async def current_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


CurrentCatalog = Annotated[Catalog, Depends(current_catalog)]


@router.get("/regions", response_model=CatalogList[RegionOut], summary="Regions")
async def regions(_: CurrentPrincipal, catalog: CurrentCatalog) -> CatalogList[RegionOut]:
    return CatalogList(
        provider=catalog.provider_name,
        items=[RegionOut(name=r.name, display_name=r.display_name) for r in catalog.regions],
    )


@router.get("/sizes", response_model=CatalogList[SizeOut], summary="Instance sizes and prices")
async def sizes(_: CurrentPrincipal, catalog: CurrentCatalog) -> CatalogList[SizeOut]:
    return CatalogList(
        provider=catalog.provider_name,
        items=[
            SizeOut(
                name=s.name,
                vcpus=s.vcpus,
                memory_mib=s.memory_mib,
                price_per_hour_usd=s.price_per_hour_usd,
                price_per_month_usd=(s.price_per_hour_usd * HOURS_PER_MONTH).quantize(
                    s.price_per_hour_usd
                ),
            )
            for s in catalog.sizes
        ],
    )


@router.get("/images", response_model=CatalogList[ImageOut], summary="Images")
async def images(_: CurrentPrincipal, catalog: CurrentCatalog) -> CatalogList[ImageOut]:
    return CatalogList(
        provider=catalog.provider_name,
        items=[ImageOut(name=i.name, display_name=i.display_name) for i in catalog.images],
    )


@router.get(
    "/database-sizes",
    response_model=CatalogList[DatabaseSizeOut],
    summary="Database sizes and prices",
)
async def database_sizes(
    _: CurrentPrincipal, catalog: CurrentCatalog
) -> CatalogList[DatabaseSizeOut]:
    return CatalogList(
        provider=catalog.provider_name,
        items=[
            DatabaseSizeOut(
                name=s.name,
                vcpus=s.vcpus,
                memory_mib=s.memory_mib,
                price_per_hour_usd=s.price_per_hour_usd,
                price_per_month_usd=(s.price_per_hour_usd * HOURS_PER_MONTH).quantize(
                    s.price_per_hour_usd
                ),
            )
            for s in catalog.database_sizes
        ],
    )


@router.get(
    "/database-engines",
    response_model=CatalogList[DatabaseEngineOut],
    summary="Database engine versions",
)
async def database_engines(
    _: CurrentPrincipal, catalog: CurrentCatalog
) -> CatalogList[DatabaseEngineOut]:
    return CatalogList(
        provider=catalog.provider_name,
        items=[
            DatabaseEngineOut(version=e.version, display_name=e.display_name)
            for e in catalog.database_engines
        ],
    )


@router.get("/prices", response_model=CatalogList[PriceOut], summary="Prices (USD)")
async def prices(_: CurrentPrincipal, catalog: CurrentCatalog) -> CatalogList[PriceOut]:
    storage = catalog.storage_prices
    return CatalogList(
        provider=catalog.provider_name,
        items=[
            *(
                PriceOut(
                    resource_type="instance",
                    meter="instance",
                    size=s.name,
                    unit="hour",
                    price_usd=s.price_per_hour_usd,
                )
                for s in catalog.sizes
            ),
            *(
                PriceOut(
                    resource_type="database",
                    meter="database",
                    size=s.name,
                    unit="hour",
                    price_usd=s.price_per_hour_usd,
                )
                for s in catalog.database_sizes
            ),
            *(
                PriceOut(resource_type=kind, meter=meter, size=None, unit=unit, price_usd=price)
                for kind, meter, unit, price in (
                    ("database", "database_storage", "GiB-month", storage.database_gib_month_usd),
                    (
                        "database_snapshot",
                        "snapshot_storage",
                        "GiB-month",
                        storage.snapshot_gib_month_usd,
                    ),
                    ("bucket", "bucket_storage", "GiB-month", storage.bucket_gib_month_usd),
                    (
                        "project",
                        "api_requests",
                        "million requests",
                        catalog.request_price_per_million_usd,
                    ),
                )
            ),
        ],
    )
