"""Catalog image → AMI id in a region: an explicit per-region id, or the newest AMI whose
name matches a pattern from a given owner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lariba.providers.aws.client import call
from lariba.providers.base import PermanentProviderError
from lariba.providers.catalog import Image

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client


class AmiResolver:
    """Remembers each (image, region) resolution: AMI lookups are slow and rarely change
    during a process's life; a restart picks up newer AMIs. Two concurrent first lookups
    both query EC2, which is harmless."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}

    async def resolve(self, *, client: EC2Client, image: Image, region: str) -> str:
        key = (image.name, region)
        if key not in self._cache:
            self._cache[key] = await self._lookup(client=client, image=image, region=region)
        return self._cache[key]

    async def _lookup(self, *, client: EC2Client, image: Image, region: str) -> str:
        explicit = image.provider.get("ami")
        if isinstance(explicit, dict) and isinstance(explicit.get(region), str):
            return str(explicit[region])
        pattern = image.provider.get("ami_name")
        owner = image.provider.get("owner")
        if not isinstance(pattern, str) or not isinstance(owner, str):
            raise PermanentProviderError(
                f"image {image.name!r} has no AMI for region {region!r} in the catalog",
                code="ImageNotMapped",
            )
        response = await call(
            lambda: client.describe_images(
                Owners=[owner],
                Filters=[
                    {"Name": "name", "Values": [pattern]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )
        )
        candidates = [i for i in response.get("Images", []) if "ImageId" in i]
        if not candidates:
            raise PermanentProviderError(
                f"no AMI named {pattern!r} from owner {owner!r} in region {region!r}",
                code="ImageNotFound",
            )
        # ISO 8601 timestamps in one format sort as strings.
        newest = max(candidates, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))
        return newest["ImageId"]
