"""The aws provider: EC2 instances (``AwsCompute``), S3 buckets (``AwsStorage``), RDS
databases (``AwsDatabases``) and CloudWatch instance metrics (``AwsMetrics``) through boto3."""

from __future__ import annotations

from typing import TypedDict

from lariba.core.settings import Settings
from lariba.providers.aws.compute import AwsCompute
from lariba.providers.aws.database import AwsDatabases
from lariba.providers.aws.metrics import AwsMetrics
from lariba.providers.aws.storage import AwsStorage
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog

__all__ = ["AwsCompute", "AwsDatabases", "AwsMetrics", "AwsStorage", "aws_provider"]


class _Calls(TypedDict):
    """How every part calls AWS."""

    endpoint_url: str | None
    connect_timeout_seconds: float
    read_timeout_seconds: float
    max_attempts: int


def aws_provider(settings: Settings) -> Provider:
    """EC2, S3 and RDS in the catalog's regions, with boto3's usual credential chain (environment,
    profile, instance role) and ``LARIBA_AWS_ENDPOINT_URL`` when set."""
    catalog = load_catalog("aws", settings.catalog_file)
    calls = _Calls(
        endpoint_url=settings.aws_endpoint_url,
        connect_timeout_seconds=settings.aws_connect_timeout_seconds,
        read_timeout_seconds=settings.aws_read_timeout_seconds,
        max_attempts=settings.aws_max_attempts,
    )
    compute = AwsCompute(catalog=catalog, **calls)
    storage = AwsStorage(console_origin=settings.console_origin, **calls)
    database = AwsDatabases(catalog=catalog, **calls)
    metrics = AwsMetrics(lookback_minutes=settings.metrics_aws_lookback_minutes, **calls)
    regions = [region.name for region in catalog.regions]

    def warm_up() -> None:
        for part in (compute, storage, database, metrics):
            part.warm_up(regions)

    return Provider(
        name="aws",
        compute=compute,
        storage=storage,
        database=database,
        metrics=metrics,
        warm_up=warm_up,
    )
