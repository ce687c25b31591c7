"""The local provider: instances run as supervised processes on this machine.

Its names are imported when first used: every instance's supervisor
(``python -m lariba.providers.local.supervisor``) imports this package, and needs none of
them (loading them all costs each instance start most of a second of CPU and 50 MB)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lariba.providers.local.compute import LocalCompute
    from lariba.providers.local.database import LocalDatabases
    from lariba.providers.local.metrics import LocalMetrics
    from lariba.providers.local.provider import (
        local_compute_enabled,
        local_databases,
        local_provider,
    )
    from lariba.providers.local.storage import LocalStorage

__all__ = [
    "LocalCompute",
    "LocalDatabases",
    "LocalMetrics",
    "LocalStorage",
    "local_compute_enabled",
    "local_databases",
    "local_provider",
]

_MODULES = {
    "LocalCompute": "compute",
    "LocalDatabases": "database",
    "LocalMetrics": "metrics",
    "LocalStorage": "storage",
    "local_compute_enabled": "provider",
    "local_databases": "provider",
    "local_provider": "provider",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
