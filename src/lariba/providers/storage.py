"""The provider contract's storage part: buckets and their objects."""

from __future__ import annotations

from typing import Protocol


class StorageProvider(Protocol):
    """Object storage. Errors are the contract's (see ``providers.base``)."""
