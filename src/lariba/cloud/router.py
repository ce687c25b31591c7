"""All routes of the cloud service."""

from fastapi import APIRouter

from lariba.cloud.catalog.router import router as catalog_router
from lariba.cloud.engine.router import router as engine_router
from lariba.cloud.instances.router import router as instances_router

router = APIRouter()
router.include_router(catalog_router)
router.include_router(instances_router)
router.include_router(engine_router)
