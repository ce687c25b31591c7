"""boto3 clients, one per service and region, and the single path every call takes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lariba.providers.aws.errors import classify

T = TypeVar("T")
C = TypeVar("C")

# Retries cover throttling, 5xx and timeouts inside one provider call; the timeouts bound
# each attempt, so with these defaults a call gives up after about 3 x (5 + 20) seconds.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 20.0
MAX_ATTEMPTS = 3


class RegionalClients(Generic[C]):
    """One AWS service's clients, each region's created once: clients are thread-safe,
    sessions are not. ``max_attempts`` counts the first attempt (botocore's standard
    retry mode); ``config`` adds to the timeouts and retries (S3's signature, say)."""

    def __init__(
        self,
        service: str,
        *,
        session: boto3.session.Session | None,
        endpoint_url: str | None,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        config: Config | None = None,
    ) -> None:
        self._service = service
        self._session = session or boto3.session.Session()
        self._endpoint_url = endpoint_url
        self._config = Config(
            # botocore's own "max_attempts" counts retries only: 3 would mean 4 attempts.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout_seconds,
            read_timeout=read_timeout_seconds,
        )
        if config is not None:
            self._config = self._config.merge(config)
        self._clients: dict[str, C] = {}
        self._lock = threading.Lock()

    def region(self, region: str) -> C:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._session.client(
                    self._service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                )
                self._clients[region] = client
            return cast(C, client)

    def warm(self, regions: Sequence[str]) -> None:
        """Creates the regions' clients now: building one loads the service's model, tenths
        of a second of CPU that would otherwise stall the first call's event loop."""
        for region in regions:
            self.region(region)


async def call(operation: Callable[[], T]) -> T:
    """Runs a blocking boto3 call off the event loop, raising the contract's errors."""
    try:
        return await asyncio.to_thread(operation)
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from exc
