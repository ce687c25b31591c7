"""An ``AwsCompute`` pointed at the run's moto server (``tests/fixtures/moto.py``) with
dummy credentials, and a plain client to look at what it did."""

from __future__ import annotations

import pytest
from mypy_boto3_ec2.client import EC2Client

from lariba.providers.aws import AwsCompute
from lariba.providers.catalog import Catalog, load_catalog
from tests.fixtures.moto import REGION, dummy_session, free_port

__all__ = ["REGION", "dummy_session", "free_port"]


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog("aws")


@pytest.fixture
def compute(catalog: Catalog, moto_endpoint: str) -> AwsCompute:
    return AwsCompute(catalog=catalog, endpoint_url=moto_endpoint, session=dummy_session())


@pytest.fixture
def ec2(moto_endpoint: str) -> EC2Client:
    """A plain boto3 client, to check from outside what the provider did."""
    return dummy_session().client("ec2", endpoint_url=moto_endpoint)
