"""HTTP endpoints of admin."""

from fastapi import APIRouter

router = APIRouter(tags=["admin"])
