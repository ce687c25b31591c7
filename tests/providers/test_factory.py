"""LARIBA_PROVIDER picks the provider; each is built from settings alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import boto3
import pytest

from lariba.providers.aws import AwsCompute
from lariba.providers.catalog import load_catalog
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


def test_aws_warm_up_builds_every_client_before_the_first_call(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ``warm_up`` a call builds no client: building one (boto3 loads the service's
    model) would hold up the event loop of whoever made the first call."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    built: list[tuple[str, str]] = []
    create_client = boto3.session.Session.client

    def counting(self: boto3.session.Session, service: str, **kwargs: Any) -> Any:
        built.append((service, kwargs["region_name"]))
        return create_client(self, service, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(boto3.session.Session, "client", counting)
    settings = make_settings(tmp_path, provider="aws", aws_endpoint_url=moto_endpoint)
    provider = build_provider(settings)
    assert built == []

    provider.warm_up()
    regions = {region.name for region in load_catalog("aws").regions}
    assert len(regions) > 1
    assert set(built) == {
        (service, region) for service in ("ec2", "s3", "rds", "cloudwatch") for region in regions
    }

    built.clear()
    for region in regions:
        assert asyncio.run(provider.compute.list_instances(region=region)) == []
    assert built == []


def test_local_warm_up_is_harmless(tmp_path: Path) -> None:
    build_provider(make_settings(tmp_path)).warm_up()
