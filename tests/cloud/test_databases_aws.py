"""Databases end to end through HTTP on the aws provider, against a moto server. moto's
endpoints are fake (nothing listens there), so these tests check what Lariba asked RDS
for, not connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lariba.providers.aws import AwsCompute, AwsDatabases
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
from tests.fixtures.cloud import cloud_client, cloud_settings
from tests.fixtures.databases import (
    create_database,
    databases_url,
    get_database,
    reveal,
    snapshot_ready,
    succeeded,
)
from tests.fixtures.identity import create_project, sign_up
from tests.fixtures.moto import dummy_session


def aws_provider(endpoint: str) -> Provider:
    catalog = load_catalog("aws")
    return Provider(
        name="aws",
        compute=AwsCompute(catalog=catalog, endpoint_url=endpoint, session=dummy_session()),
        database=AwsDatabases(catalog=catalog, endpoint_url=endpoint, session=dummy_session()),
    )


def _instance(rds: Any, identifier: str) -> dict[str, Any]:
    [instance] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    return dict(instance)


async def test_database_lifecycle_on_rds(
    tmp_path: Path, test_database_url: str, moto_endpoint: str
) -> None:
    settings = cloud_settings(tmp_path, provider="aws", aws_endpoint_url=moto_endpoint)
    rds = dummy_session().client("rds", endpoint_url=moto_endpoint)
    async with cloud_client(
        settings, test_database_url, provider=aws_provider(moto_endpoint)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_database(
            client, user, pid, name="ledger", size="micro", storage_gb=20, engine_version="16"
        )
        dbid = created["resource"]["id"]
        password = created["credentials"]["password"]
        await succeeded(client, user, created)
        database = await get_database(client, user, pid, dbid)
        assert database["status"] == "available"
        assert database["provider_id"] == f"lariba-{dbid}"
        assert database["endpoint"]["port"] == 5432
        assert database["endpoint"]["host"]

        instance = _instance(rds, f"lariba-{dbid}")
        assert instance["Engine"] == "postgres"
        assert instance["EngineVersion"].startswith("16.")
        assert instance["DBInstanceClass"] == "db.t3.micro"
        assert instance["AllocatedStorage"] == 20
        assert instance["PubliclyAccessible"] is False
        assert instance["StorageEncrypted"] is True
        assert instance["DeletionProtection"] is False
        assert instance["MasterUsername"] == "app"
        tags = {t["Key"]: t["Value"] for t in instance["TagList"]}
        assert tags["lariba:resource-id"] == dbid
        assert tags["lariba:project-id"] == pid
        assert tags["Name"] == "ledger"
        credentials = await reveal(client, user, pid, dbid)
        assert credentials["password"] == password
        assert credentials["uri"] == (
            f"postgresql://app:{password}@{database['endpoint']['host']}:5432/app"
        )

        # Snapshot, then restore it into a new database.
        snapshotted = await client.post(
            databases_url(pid, dbid, "snapshots"), json={"name": "nightly"}, headers=user.headers
        )
        assert snapshotted.status_code == 202, snapshotted.text
        await succeeded(client, user, snapshotted.json())
        sid = snapshotted.json()["resource"]["id"]
        [snapshot] = rds.describe_db_snapshots(DBSnapshotIdentifier=f"lariba-snap-{sid}")[
            "DBSnapshots"
        ]
        assert snapshot["DBInstanceIdentifier"] == f"lariba-{dbid}"
        assert snapshot["Encrypted"] is True

        restored = await client.post(
            f"/v1/projects/{pid}/database-snapshots/{sid}/restore",
            json={"name": "ledger-copy", "size": "small"},
            headers=user.headers,
        )
        assert restored.status_code == 202, restored.text
        done = await succeeded(client, user, restored.json())
        assert done["params"]["password_set"] is True
        copy_id = restored.json()["resource"]["id"]
        copy = _instance(rds, f"lariba-{copy_id}")
        assert copy["DBInstanceClass"] == "db.t3.small"
        assert copy["PubliclyAccessible"] is False
        assert {t["Key"]: t["Value"] for t in copy["TagList"]}["lariba:resource-id"] == copy_id

        # Resize: a bigger class and more storage.
        resized = await client.post(
            databases_url(pid, dbid, "resize"),
            json={"size": "medium", "storage_gb": 40},
            headers=user.headers,
        )
        assert resized.status_code == 202, resized.text
        await succeeded(client, user, resized.json())
        instance = _instance(rds, f"lariba-{dbid}")
        assert (instance["DBInstanceClass"], instance["AllocatedStorage"]) == ("db.t3.medium", 40)
        database = await get_database(client, user, pid, dbid)
        assert (database["size"], database["storage_gb"], database["status"]) == (
            "medium",
            40,
            "available",
        )

        reset = await client.post(databases_url(pid, dbid, "reset-password"), headers=user.headers)
        assert reset.status_code == 202, reset.text
        await succeeded(client, user, reset.json())

        # Delete with a final snapshot.
        deleted = await client.delete(
            databases_url(pid, dbid), params={"final_snapshot": "true"}, headers=user.headers
        )
        assert deleted.status_code == 202, deleted.text
        await succeeded(client, user, deleted.json())
        assert (await get_database(client, user, pid, dbid))["status"] == "deleted"
        live = [
            i["DBInstanceIdentifier"]
            for i in rds.describe_db_instances()["DBInstances"]
            if i["DBInstanceStatus"] != "deleting"
        ]
        assert f"lariba-{dbid}" not in live
        snapshots = (
            await client.get(f"/v1/projects/{pid}/database-snapshots", headers=user.headers)
        ).json()["items"]
        [final] = [s for s in snapshots if s["final"]]
        final = await snapshot_ready(client, user, pid, final["id"])
        assert final["provider_id"] == f"lariba-snap-{final['id']}"
        identifiers = {
            s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]
        }
        assert final["provider_id"] in identifiers

        # Delete a snapshot.
        gone = await client.delete(
            f"/v1/projects/{pid}/database-snapshots/{sid}", headers=user.headers
        )
        assert gone.status_code == 202, gone.text
        await succeeded(client, user, gone.json())
        identifiers = {
            s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]
        }
        assert f"lariba-snap-{sid}" not in identifiers


async def test_deletion_protection_is_set_at_rds_and_refuses_delete(
    tmp_path: Path, test_database_url: str, moto_endpoint: str
) -> None:
    settings = cloud_settings(tmp_path, provider="aws", aws_endpoint_url=moto_endpoint)
    rds = dummy_session().client("rds", endpoint_url=moto_endpoint)
    async with cloud_client(
        settings, test_database_url, provider=aws_provider(moto_endpoint)
    ) as client:
        user = await sign_up(client)
        pid = (await create_project(client, user))["id"]
        created = await create_database(
            client, user, pid, name="vault", size="micro", storage_gb=20, deletion_protection=True
        )
        dbid = created["resource"]["id"]
        await succeeded(client, user, created)
        assert _instance(rds, f"lariba-{dbid}")["DeletionProtection"] is True
        refused = await client.delete(databases_url(pid, dbid), headers=user.headers)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "deletion_protected"
        assert (await get_database(client, user, pid, dbid))["status"] == "available"
        unprotect = await client.patch(
            databases_url(pid, dbid),
            json={"deletion_protection": False, "labels": {"tier": "gold"}},
            headers=user.headers,
        )
        assert unprotect.status_code == 202, unprotect.text
        assert unprotect.json()["type"] == "update"
        await succeeded(client, user, unprotect.json())
        assert _instance(rds, f"lariba-{dbid}")["DeletionProtection"] is False
        database = await get_database(client, user, pid, dbid)
        assert (database["deletion_protection"], database["labels"]) == (False, {"tier": "gold"})
        deleted = await client.delete(databases_url(pid, dbid), headers=user.headers)
        assert deleted.status_code == 202, deleted.text
        await succeeded(client, user, deleted.json())
