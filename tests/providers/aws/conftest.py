"""A moto server on 127.0.0.1 for the whole run, reset before each test, and an
``AwsCompute`` pointed at it with dummy credentials."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_ec2.client import EC2Client

from lariba.providers.aws import AwsCompute
from lariba.providers.catalog import Catalog, load_catalog

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dummy_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()


@pytest.fixture
def moto_endpoint(moto_port: int) -> str:
    # Each test starts from moto's initial state (default VPC, AMIs, no instances).
    connection = http.client.HTTPConnection("127.0.0.1", moto_port, timeout=10)
    try:
        connection.request("POST", "/moto-api/reset")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    return f"http://127.0.0.1:{moto_port}"


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
