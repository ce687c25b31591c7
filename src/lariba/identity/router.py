"""All routes of the identity service."""

from fastapi import APIRouter

from lariba.identity.admin.router import router as admin_router
from lariba.identity.api_keys.router import router as api_keys_router
from lariba.identity.auth.router import router as auth_router
from lariba.identity.keys_router import router as keys_router
from lariba.identity.mfa.router import router as mfa_router
from lariba.identity.projects.router import router as projects_router

router = APIRouter()
router.include_router(keys_router)
router.include_router(auth_router)
router.include_router(mfa_router)
router.include_router(api_keys_router)
router.include_router(projects_router)
router.include_router(admin_router)
