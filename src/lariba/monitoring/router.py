"""All routes of the monitoring service."""

from fastapi import APIRouter

from lariba.monitoring.alerts.router import router as alerts_router
from lariba.monitoring.audit.router import router as audit_router
from lariba.monitoring.budgets.router import router as budgets_router
from lariba.monitoring.metrics.router import router as metrics_router
from lariba.monitoring.usage.router import router as usage_router
from lariba.monitoring.webhooks.router import router as webhooks_router

router = APIRouter()
router.include_router(audit_router)
router.include_router(metrics_router)
router.include_router(usage_router)
router.include_router(budgets_router)
router.include_router(webhooks_router)
router.include_router(alerts_router)
