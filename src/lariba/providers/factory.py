"""Builds the provider named by ``LARIBA_PROVIDER``."""

from __future__ import annotations

from lariba.core.settings import ProviderName, Settings
from lariba.providers.base import Provider


def build_provider(settings: Settings) -> Provider:
    if settings.provider is ProviderName.aws:
        from lariba.providers.aws import aws_provider

        return aws_provider(settings)
    from lariba.providers.local import local_provider

    return local_provider(settings)
