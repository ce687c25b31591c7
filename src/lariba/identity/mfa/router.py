"""HTTP endpoints of mfa."""

from fastapi import APIRouter

router = APIRouter(tags=["mfa"])
