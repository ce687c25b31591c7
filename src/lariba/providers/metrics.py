"""The provider contract's metrics part: what an instance used (CPU, memory, network), read
from the cloud's own monitoring in batches. Buckets and databases are measured through
their own parts (``bucket_stats``, ``DatabaseProvider.metrics``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Instance metric names, as stored and queried by the monitoring service.
CPU_PERCENT = "cpu_percent"
MEMORY_BYTES = "memory_bytes"
NETWORK_IN_BYTES = "network_in_bytes"
NETWORK_OUT_BYTES = "network_out_bytes"


@dataclass(frozen=True)
class MeasuredInstance:
    """An instance to measure: Lariba's id, and where the provider knows it."""

    resource_id: uuid.UUID
    region: str
    provider_id: str


@dataclass(frozen=True)
class Sample:
    """One value of one metric of one resource at one moment (UTC)."""

    resource_id: uuid.UUID
    name: str
    value: float
    at: datetime


class MetricsProvider(Protocol):
    """Instance metrics. ``names`` are the metrics this provider can report."""

    names: frozenset[str]

    async def sample(self, instances: Sequence[MeasuredInstance]) -> list[Sample]:
        """The latest values of every instance, in as few provider calls as the cloud
        allows. An instance that cannot be measured (gone, not reporting yet) is left out;
        a ``ProviderError`` means that nothing of the batch could be read."""
        ...
