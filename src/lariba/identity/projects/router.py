"""HTTP endpoints of projects."""

from fastapi import APIRouter

router = APIRouter(tags=["projects"])
