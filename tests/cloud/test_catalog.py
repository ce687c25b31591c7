"""The catalog API: what users can choose from, per provider, overridable by the operator."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lariba.providers.catalog import CatalogError, load_catalog
from tests.fixtures.app import running_client
from tests.fixtures.database import make_settings
from tests.fixtures.identity import TestUser, sign_up


async def test_local_catalog_is_the_default(client: httpx.AsyncClient, alice: TestUser) -> None:
    regions = (await client.get("/v1/catalog/regions", headers=alice.headers)).json()
    assert regions == {
        "provider": "local",
        "items": [{"name": "local", "display_name": "This machine"}],
        "next_cursor": None,
    }
    sizes = (await client.get("/v1/catalog/sizes", headers=alice.headers)).json()["items"]
    small = next(s for s in sizes if s["name"] == "small")
    assert small == {
        "name": "small",
        "vcpus": 1,
        "memory_mib": 512,
        "price_per_hour_usd": "0.004",
        "price_per_month_usd": "2.920",
    }
    images = (await client.get("/v1/catalog/images", headers=alice.headers)).json()["items"]
    assert [i["name"] for i in images] == ["shell"]
    prices = (await client.get("/v1/catalog/prices", headers=alice.headers)).json()["items"]
    assert {
        "resource_type": "instance",
        "meter": "instance",
        "size": "small",
        "unit": "hour",
        "price_usd": "0.004",
    } in prices
    assert {
        "resource_type": "bucket",
        "meter": "bucket_storage",
        "size": None,
        "unit": "GiB-month",
        "price_usd": "0.02",
    } in prices
    assert {p["meter"] for p in prices} == {
        "instance",
        "database",
        "database_storage",
        "snapshot_storage",
        "bucket_storage",
        "api_requests",
    }


async def test_catalog_needs_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/catalog/sizes")
    assert response.status_code == 401


async def test_operator_file_replaces_sections(tmp_path: Path, test_database_url: str) -> None:
    override = tmp_path / "catalog.toml"
    override.write_text(
        '[[sizes]]\nname = "xl"\nvcpus = 8\nmemory_mib = 16384\nprice_per_hour_usd = 0.5\n'
    )
    settings = make_settings(tmp_path, catalog_file=override)
    async with running_client(settings, test_database_url) as client:
        user = await sign_up(client)
        sizes = (await client.get("/v1/catalog/sizes", headers=user.headers)).json()["items"]
        assert [s["name"] for s in sizes] == ["xl"]
        assert sizes[0]["price_per_month_usd"] == "365.0"
        regions = (await client.get("/v1/catalog/regions", headers=user.headers)).json()["items"]
        assert [r["name"] for r in regions] == ["local"]


def test_aws_catalog_maps_sizes_to_instance_types() -> None:
    catalog = load_catalog("aws")
    small = catalog.size("small")
    assert small is not None
    assert small.provider["instance_type"] == "t3.small"
    assert catalog.region("us-east-1") is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[sizes]]\nname = 'a'\n", "malformed"),
        ("sizes = []\n", "defines no size"),
        (
            "[[images]]\nname = 'x'\n[[images]]\nname = 'x'\n",
            "image name twice",
        ),
        ("not toml at all [", "cannot read"),
    ],
)
def test_broken_catalog_file_is_refused_clearly(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(content)
    with pytest.raises(CatalogError, match=message):
        load_catalog("local", path)
