"""All routes of the monitoring service."""

from fastapi import APIRouter

router = APIRouter()
