"""The aws provider: EC2 instances through boto3 (``AwsCompute``)."""

from lariba.providers.aws.compute import AwsCompute

__all__ = ["AwsCompute"]
