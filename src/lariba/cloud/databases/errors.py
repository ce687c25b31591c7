"""Errors of the databases API, with their HTTP status and stable code."""

from __future__ import annotations

from lariba.cloud.engine.errors import InvalidState, ProviderUnavailable
from lariba.core.errors import LaribaError

__all__ = ["DatabasesNotOffered", "InvalidState", "ProviderUnavailable"]


class DatabasesNotOffered(LaribaError):
    status = 501
    code = "databases_not_offered"
    title = "Not offered"
