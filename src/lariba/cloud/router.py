"""All routes of the cloud service."""

from fastapi import APIRouter

from lariba.cloud.buckets.objects_router import router as objects_router
from lariba.cloud.buckets.router import router as buckets_router
from lariba.cloud.buckets.storage_router import router as storage_router
from lariba.cloud.catalog.router import router as catalog_router
from lariba.cloud.databases.router import router as databases_router
from lariba.cloud.engine.router import router as engine_router
from lariba.cloud.instances.router import router as instances_router

router = APIRouter()
router.include_router(catalog_router)
router.include_router(instances_router)
router.include_router(databases_router)
router.include_router(buckets_router)
router.include_router(objects_router)
router.include_router(storage_router)
router.include_router(engine_router)
