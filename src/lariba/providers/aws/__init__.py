"""The aws provider: EC2 instances (``AwsCompute``), S3 buckets (``AwsStorage``), RDS
databases (``AwsDatabases``) and CloudWatch instance metrics (``AwsMetrics``) through boto3."""

from __future__ import annotations

from lariba.core.settings import Settings
from lariba.providers.aws.compute import AwsCompute
from lariba.providers.aws.database import AwsDatabases
from lariba.providers.aws.metrics import AwsMetrics
from lariba.providers.aws.storage import AwsStorage
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog

__all__ = ["AwsCompute", "AwsDatabases", "AwsMetrics", "AwsStorage", "aws_provider"]


def aws_provider(settings: Settings) -> Provider:
    """EC2, S3 and RDS in the catalog's regions, with boto3's usual credential chain (environment,
    profile, instance role) and ``LARIBA_AWS_ENDPOINT_URL`` when set."""
    return Provider(
        name="aws",
        compute=AwsCompute(
            catalog=load_catalog("aws", settings.catalog_file),
            endpoint_url=settings.aws_endpoint_url,
            connect_timeout_seconds=settings.aws_connect_timeout_seconds,
            read_timeout_seconds=settings.aws_read_timeout_seconds,
            max_attempts=settings.aws_max_attempts,
        ),
        storage=AwsStorage(
            endpoint_url=settings.aws_endpoint_url,
            connect_timeout_seconds=settings.aws_connect_timeout_seconds,
            read_timeout_seconds=settings.aws_read_timeout_seconds,
            max_attempts=settings.aws_max_attempts,
            console_origin=settings.console_origin,
        ),
        database=AwsDatabases(
            catalog=load_catalog("aws", settings.catalog_file),
            endpoint_url=settings.aws_endpoint_url,
            connect_timeout_seconds=settings.aws_connect_timeout_seconds,
            read_timeout_seconds=settings.aws_read_timeout_seconds,
            max_attempts=settings.aws_max_attempts,
        ),
        metrics=AwsMetrics(
            endpoint_url=settings.aws_endpoint_url,
            lookback_minutes=settings.metrics_aws_lookback_minutes,
            connect_timeout_seconds=settings.aws_connect_timeout_seconds,
            read_timeout_seconds=settings.aws_read_timeout_seconds,
            max_attempts=settings.aws_max_attempts,
        ),
    )
