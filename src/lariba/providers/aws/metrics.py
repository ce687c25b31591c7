"""EC2 instance metrics from CloudWatch: one GetMetricData call per region for up to 125
instances (four metrics each, 500 queries, CloudWatch's limit per call).

Each call re-reads the last ``lookback_minutes``: CloudWatch publishes datapoints minutes
after the fact (five-minute ones with basic monitoring), and the current period's value is
partial until it ends. Datapoints keep CloudWatch's timestamps, so a re-read replaces the
earlier value of the same period instead of adding a sample."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from lariba.providers.aws.client import (
    CONNECT_TIMEOUT_SECONDS,
    MAX_ATTEMPTS,
    READ_TIMEOUT_SECONDS,
    RegionalClients,
    call,
)
from lariba.providers.metrics import (
    CPU_PERCENT,
    MEMORY_BYTES,
    NETWORK_IN_BYTES,
    NETWORK_OUT_BYTES,
    MeasuredInstance,
    Sample,
)

# Lariba's name → (namespace, CloudWatch metric, statistic). Memory is only there when the
# CloudWatch agent publishes it with the InstanceId dimension (EC2 itself cannot see it).
QUERIES: dict[str, tuple[str, str, str]] = {
    CPU_PERCENT: ("AWS/EC2", "CPUUtilization", "Average"),
    NETWORK_IN_BYTES: ("AWS/EC2", "NetworkIn", "Sum"),
    NETWORK_OUT_BYTES: ("AWS/EC2", "NetworkOut", "Sum"),
    MEMORY_BYTES: ("CWAgent", "mem_used", "Average"),
}
MAX_QUERIES_PER_CALL = 500
INSTANCES_PER_CALL = MAX_QUERIES_PER_CALL // len(QUERIES)


class AwsMetrics:
    """``MetricsProvider`` over CloudWatch; credentials and endpoint as ``AwsCompute``'s."""

    names = frozenset(QUERIES)

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        period_seconds: int = 60,
        lookback_minutes: int = 15,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._period = period_seconds
        self._lookback = timedelta(minutes=lookback_minutes)
        self._clients: RegionalClients[Any] = RegionalClients(
            "cloudwatch",
            session=session,
            endpoint_url=endpoint_url,
            connect_timeout_seconds=connect_timeout_seconds,
            read_timeout_seconds=read_timeout_seconds,
            max_attempts=max_attempts,
        )

    def warm_up(self, regions: Sequence[str]) -> None:
        self._clients.warm(regions)

    async def sample(self, instances: Sequence[MeasuredInstance]) -> list[Sample]:
        end = datetime.now(UTC).replace(microsecond=0)
        # Periods aligned on the epoch, as CloudWatch aggregates them.
        start = end - self._lookback
        start -= timedelta(seconds=int(start.timestamp()) % self._period)
        by_region: dict[str, list[MeasuredInstance]] = {}
        for instance in instances:
            by_region.setdefault(instance.region, []).append(instance)
        samples: list[Sample] = []
        for region, members in by_region.items():
            for first in range(0, len(members), INSTANCES_PER_CALL):
                chunk = members[first : first + INSTANCES_PER_CALL]
                samples += await self._read(region, chunk, start=start, end=end)
        return samples

    async def _read(
        self, region: str, instances: Sequence[MeasuredInstance], *, start: datetime, end: datetime
    ) -> list[Sample]:
        wanted: dict[str, tuple[MeasuredInstance, str]] = {}
        queries = []
        for index, instance in enumerate(instances):
            for name, (namespace, metric, statistic) in QUERIES.items():
                query_id = f"i{index}_{name}"
                wanted[query_id] = (instance, name)
                queries.append(
                    {
                        "Id": query_id,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": namespace,
                                "MetricName": metric,
                                "Dimensions": [
                                    {"Name": "InstanceId", "Value": instance.provider_id}
                                ],
                            },
                            "Period": self._period,
                            "Stat": statistic,
                        },
                        "ReturnData": True,
                    }
                )
        client = self._clients.region(region)

        def read() -> list[dict[str, Any]]:
            pages = client.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=start, EndTime=end
            )
            return [result for page in pages for result in page.get("MetricDataResults", [])]

        samples = []
        for result in await call(read):
            instance, name = wanted[result["Id"]]
            for at, value in zip(
                result.get("Timestamps", []), result.get("Values", []), strict=False
            ):
                samples.append(Sample(instance.resource_id, name, float(value), at.astimezone(UTC)))
        return samples
