"""Imports every service's tables so Alembic and the test fixtures see the whole schema."""


def import_all_models() -> None:
    import lariba.cloud.buckets.models
    import lariba.cloud.databases.models
    import lariba.cloud.engine.models
    import lariba.core.idempotency
    import lariba.identity.models
    import lariba.monitoring.alerts.models
    import lariba.monitoring.budgets.models
    import lariba.monitoring.metrics.models
    import lariba.monitoring.models
    import lariba.monitoring.usage.models  # noqa: F401
