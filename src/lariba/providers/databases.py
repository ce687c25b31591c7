"""The provider contract's database part: managed PostgreSQL databases and snapshots."""

from __future__ import annotations

from typing import Protocol


class DatabaseProvider(Protocol):
    """Managed databases. Errors are the contract's (see ``providers.base``)."""
