"""The local provider: instances run as supervised processes on this machine."""

from __future__ import annotations

from lariba.core.settings import Environment, Settings
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
from lariba.providers.local.compute import LocalCompute

__all__ = ["LocalCompute", "local_compute_enabled", "local_provider"]


def local_compute_enabled(settings: Settings) -> bool:
    """LARIBA_LOCAL_COMPUTE_ENABLED, or, unset, on in development and off in production."""
    if settings.local_compute_enabled is not None:
        return settings.local_compute_enabled
    return settings.env is Environment.development


def local_provider(settings: Settings) -> Provider:
    return Provider(
        name="local",
        compute=LocalCompute(
            catalog=load_catalog("local", settings.catalog_file),
            root=settings.data_dir / "instances",
            enabled=local_compute_enabled(settings),
        ),
    )
