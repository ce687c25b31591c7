"""Errors of the buckets API, and how a provider's storage error reaches the client."""

from __future__ import annotations

import re

from lariba.cloud.engine.errors import ProviderUnavailable
from lariba.core.errors import LaribaError
from lariba.providers.base import ProviderError, ProviderNotFound, TransientProviderError


class StorageError(LaribaError):
    """A storage request the provider refused, with the provider's reason."""

    def __init__(self, detail: str, *, status: int, code: str) -> None:
        super().__init__(detail, code=code)
        self.status = status  # type: ignore[misc]


# S3's error codes: the HTTP status and Lariba code they become.
_STATUSES: dict[str, tuple[int, str]] = {
    "NoSuchBucket": (404, "bucket_not_found"),
    "NoSuchKey": (404, "object_not_found"),
    "NoSuchUpload": (404, "upload_not_found"),
    "404": (404, "object_not_found"),
    "NotFound": (404, "object_not_found"),
    "BucketNotEmpty": (409, "bucket_not_empty"),
    "InvalidPartOrder": (422, "invalid_part_order"),
    "InvalidPart": (422, "invalid_part"),
    "EntityTooSmall": (422, "part_too_small"),
    "EntityTooLarge": (413, "payload_too_large"),
    "IncompleteBody": (400, "incomplete_body"),
    "BadDigest": (400, "bad_digest"),
    "InvalidDigest": (400, "bad_digest"),
    "InvalidRange": (416, "invalid_range"),
    "InvalidArgument": (422, "validation_failed"),
    "MalformedXML": (422, "validation_failed"),
}


def _snake(code: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", code).lower()


def provider_problem(exc: ProviderError) -> LaribaError:
    """The client's view of a provider's refusal (or of its silence: 503)."""
    if isinstance(exc, TransientProviderError):
        return ProviderUnavailable(
            f"The provider did not answer ({exc.code}); try again shortly.",
            headers={"Retry-After": "5"},
        )
    status, code = _STATUSES.get(exc.code, (409, f"provider_{_snake(exc.code)}"))
    if isinstance(exc, ProviderNotFound) and status != 404:
        status, code = 404, "object_not_found"
    return StorageError(f"{exc.message} ({exc.code})", status=status, code=code)
