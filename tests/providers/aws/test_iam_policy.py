"""The IAM policy published in docs/providers.md grants every EC2, S3, RDS and CloudWatch
call the provider makes, and nothing more."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROVIDER_DIR = ROOT / "src" / "lariba" / "providers" / "aws"
DOCS = ROOT / "docs" / "providers.md"


# S3's API calls and the IAM actions that allow them (their names differ).
S3_ACTIONS: dict[str, set[str]] = {
    "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "complete_multipart_upload": {"s3:PutObject"},
    "copy_object": {"s3:GetObject", "s3:PutObject"},
    "create_bucket": {"s3:CreateBucket"},
    "create_multipart_upload": {"s3:PutObject"},
    "delete_bucket": {"s3:DeleteBucket"},
    "delete_object": {"s3:DeleteObject"},
    "delete_objects": {"s3:DeleteObject", "s3:DeleteObjectVersion"},
    # Signs locally; the URL's request is then allowed as GetObject / PutObject.
    "generate_presigned_url": {"s3:GetObject", "s3:PutObject"},
    "get_bucket_tagging": {"s3:GetBucketTagging"},
    "get_bucket_versioning": {"s3:GetBucketVersioning"},
    "get_object": {"s3:GetObject"},
    "head_bucket": {"s3:ListBucket"},
    "head_object": {"s3:GetObject"},
    "list_buckets": {"s3:ListAllMyBuckets"},
    "list_multipart_uploads": {"s3:ListBucketMultipartUploads"},
    "list_object_versions": {"s3:ListBucketVersions"},
    "list_objects_v2": {"s3:ListBucket"},
    "put_bucket_cors": {"s3:PutBucketCORS"},
    "put_bucket_encryption": {"s3:PutEncryptionConfiguration"},
    "put_bucket_tagging": {"s3:PutBucketTagging"},
    "put_bucket_versioning": {"s3:PutBucketVersioning"},
    "put_object": {"s3:PutObject"},
    "put_public_access_block": {"s3:PutBucketPublicAccessBlock"},
    "upload_part": {"s3:PutObject"},
}
S3_SOURCE = PROVIDER_DIR / "storage.py"

# RDS's and CloudWatch's calls (databases) and the IAM actions that allow them; creating
# with tags needs AddTagsToResource too.
RDS_ACTIONS: dict[str, set[str]] = {
    "create_db_instance": {"rds:CreateDBInstance", "rds:AddTagsToResource"},
    "create_db_snapshot": {"rds:CreateDBSnapshot", "rds:AddTagsToResource"},
    "delete_db_instance": {"rds:DeleteDBInstance"},
    "delete_db_snapshot": {"rds:DeleteDBSnapshot"},
    "describe_db_instances": {"rds:DescribeDBInstances"},
    "describe_db_snapshots": {"rds:DescribeDBSnapshots"},
    "get_metric_statistics": {"cloudwatch:GetMetricStatistics"},
    "modify_db_instance": {"rds:ModifyDBInstance"},
    "restore_db_instance_from_db_snapshot": {
        "rds:RestoreDBInstanceFromDBSnapshot",
        "rds:AddTagsToResource",
    },
}
RDS_SOURCE = PROVIDER_DIR / "database.py"

# CloudWatch's calls for instance metrics.
CLOUDWATCH_ACTIONS: dict[str, set[str]] = {"get_metric_data": {"cloudwatch:GetMetricData"}}
CLOUDWATCH_SOURCE = PROVIDER_DIR / "metrics.py"


def calls_made() -> set[str]:
    source = "\n".join(
        path.read_text()
        for path in PROVIDER_DIR.glob("*.py")
        if path not in (S3_SOURCE, RDS_SOURCE, CLOUDWATCH_SOURCE)
    )
    methods = set(re.findall(r"client\.([a-z_]+)\(", source))
    methods |= set(re.findall(r'get_paginator\("([a-z_]+)"\)', source))
    methods.discard("get_paginator")
    ec2 = {"ec2:" + "".join(part.title() for part in m.split("_")) for m in methods}
    return ec2 | s3_calls_made() | rds_calls_made() | cloudwatch_calls_made()


def s3_calls_made() -> set[str]:
    source = S3_SOURCE.read_text()
    methods = set(re.findall(r"\bs3\.([a-z_0-9]+)\(", source))
    methods |= set(re.findall(r'get_paginator\("([a-z_0-9]+)"\)', source))
    methods.discard("get_paginator")
    unknown = methods - S3_ACTIONS.keys()
    assert not unknown, f"add the IAM actions of {unknown} to S3_ACTIONS and the policy"
    return set().union(*(S3_ACTIONS[m] for m in methods))


def rds_calls_made() -> set[str]:
    source = RDS_SOURCE.read_text()
    methods = set(re.findall(r"\b(?:rds|cloudwatch)\.([a-z_0-9]+)\(", source))
    methods |= set(re.findall(r'get_paginator\("([a-z_0-9]+)"\)', source))
    methods.discard("get_paginator")
    unknown = methods - RDS_ACTIONS.keys()
    assert not unknown, f"add the IAM actions of {unknown} to RDS_ACTIONS and the policy"
    return set().union(*(RDS_ACTIONS[m] for m in methods))


def cloudwatch_calls_made() -> set[str]:
    source = CLOUDWATCH_SOURCE.read_text()
    methods = set(re.findall(r"\bclient\.([a-z_0-9]+)\(", source))
    methods |= set(re.findall(r'get_paginator\("([a-z_0-9]+)"\)', source))
    methods.discard("get_paginator")
    unknown = methods - CLOUDWATCH_ACTIONS.keys()
    assert not unknown, f"add the IAM actions of {unknown} to CLOUDWATCH_ACTIONS and the policy"
    return set().union(*(CLOUDWATCH_ACTIONS[m] for m in methods))


def policy_actions() -> set[str]:
    section = DOCS.read_text().split("## aws", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, "docs/providers.md has no IAM policy for aws"
    actions: set[str] = set()
    for statement in json.loads(block.group(1))["Statement"]:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    return actions


def test_policy_allows_every_ec2_call_of_the_provider() -> None:
    made = calls_made()

    assert "ec2:RunInstances" in made
    assert made <= policy_actions()


def test_policy_allows_nothing_the_provider_does_not_call() -> None:
    # CreateTags is implied by tagging on create, not called directly.
    assert policy_actions() - calls_made() == {"ec2:CreateTags"}


def test_policy_allows_every_s3_call_of_the_provider() -> None:
    made = s3_calls_made()

    assert {"s3:CreateBucket", "s3:PutBucketPublicAccessBlock"} <= made
    assert made <= policy_actions()


def test_policy_allows_every_rds_call_of_the_provider() -> None:
    made = rds_calls_made()

    assert {"rds:CreateDBInstance", "rds:ModifyDBInstance"} <= made
    assert made <= policy_actions()


def test_policy_allows_every_cloudwatch_call_of_the_provider() -> None:
    made = cloudwatch_calls_made()

    assert made == {"cloudwatch:GetMetricData"}
    assert made <= policy_actions()
