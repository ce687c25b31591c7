"""LARIBA_PROVIDER picks the provider; each is built from settings alone."""

from __future__ import annotations

from pathlib import Path

from lariba.providers.aws import AwsCompute
from lariba.providers.factory import build_provider
from lariba.providers.local import LocalCompute
from tests.fixtures.database import make_settings


def test_local_is_the_default(tmp_path: Path) -> None:
    provider = build_provider(make_settings(tmp_path))
    assert provider.name == "local"
    assert isinstance(provider.compute, LocalCompute)


def test_aws_when_configured(tmp_path: Path) -> None:
    provider = build_provider(
        make_settings(tmp_path, provider="aws", aws_endpoint_url="http://127.0.0.1:5000")
    )
    assert provider.name == "aws"
    assert isinstance(provider.compute, AwsCompute)
