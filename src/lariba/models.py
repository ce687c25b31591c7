"""Imports every service's tables so Alembic and the test fixtures see the whole schema."""


def import_all_models() -> None:
    import lariba.identity.models  # noqa: F401
