"""HTTP endpoints of api-keys."""

from fastapi import APIRouter

router = APIRouter(tags=["api-keys"])
