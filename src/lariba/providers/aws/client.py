"""EC2 clients, one per region, and the single path every EC2 call takes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lariba.providers.aws.errors import classify

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

T = TypeVar("T")

# Retries cover throttling and 5xx inside one provider call; the timeouts bound each
# attempt, so a call gives up after about 3 x (5 + 20) seconds at worst.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
)


class Ec2Clients:
    """Creates each region's client once: clients are thread-safe, sessions are not."""

    def __init__(self, *, session: boto3.session.Session | None, endpoint_url: str | None) -> None:
        self._session = session or boto3.session.Session()
        self._endpoint_url = endpoint_url
        self._clients: dict[str, EC2Client] = {}
        self._lock = threading.Lock()

    def region(self, region: str) -> EC2Client:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._session.client(
                    "ec2",
                    region_name=region,
                    endpoint_url=self._endpoint_url,
                    config=CLIENT_CONFIG,
                )
                self._clients[region] = client
            return client


async def call(operation: Callable[[], T]) -> T:
    """Runs a blocking boto3 call off the event loop, raising the contract's errors."""
    try:
        return await asyncio.to_thread(operation)
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from exc
