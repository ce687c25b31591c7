"""All routes of the identity service."""

from fastapi import APIRouter

from lariba.identity.auth.router import router as auth_router
from lariba.identity.keys_router import router as keys_router

router = APIRouter()
router.include_router(keys_router)
router.include_router(auth_router)
