"""Errors every resource kind answers the same way."""

from __future__ import annotations

from lariba.core.errors import Conflict, LaribaError


class InvalidState(Conflict):
    """The resource cannot do this in its current state."""

    code = "invalid_state"


class ProviderUnavailable(LaribaError):
    """The provider did not answer a call made within the request; try again."""

    status = 503
    code = "provider_unavailable"
    title = "Provider unavailable"
