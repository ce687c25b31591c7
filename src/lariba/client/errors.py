"""The exceptions the Lariba Cloud client raises: one class per kind of failure, each
carrying the API's stable problem ``code``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from lariba.client.models import Operation


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request: ``field`` is dotted (``firewall.0.cidr``)."""

    field: str
    message: str
    location: str


class LaribaError(Exception):
    """Base of every client error. ``status`` is the HTTP status, or None when no answer
    came (``ConnectionFailed``) or the failure is an operation's."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str = "error",
        errors: tuple[FieldError, ...] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{detail} ({code})" if code else detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.errors = errors
        self.request_id = request_id


class Unauthorized(LaribaError):
    """401: no, wrong or expired credentials (``invalid_credentials``, ``mfa_required``,
    ``token_expired``, ``session_revoked``, ``invalid_api_key`` …)."""


class Forbidden(LaribaError):
    """403: the role is too low (``insufficient_role``) or a quota is used up."""


class NotFound(LaribaError):
    """404: no such resource, or it belongs to another tenant (``instance_not_found`` …)."""


class Conflict(LaribaError):
    """409: the resource's state forbids it (``invalid_state``, ``operation_in_progress``,
    a name already taken …)."""


class InvalidInput(LaribaError):
    """422: the request broke a rule; ``errors`` names each field."""


class RateLimited(LaribaError):
    """429: too many requests; try again in ``retry_after`` seconds."""

    def __init__(self, detail: str, *, retry_after: int | None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class ServerError(LaribaError):
    """5xx: the server failed or is unavailable; quote ``request_id`` when reporting it."""


class ConnectionFailed(LaribaError):
    """The server could not be reached, or did not answer in time."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"Could not reach Lariba Cloud at {url}: {reason}", code="connection_failed"
        )
        self.url = url


class OperationFailed(LaribaError):
    """An operation ended ``failed``; ``code`` and ``detail`` are its error's."""

    def __init__(self, operation: Operation) -> None:
        error = operation.error
        super().__init__(
            error.message if error else f"Operation {operation.id} failed.",
            code=error.code if error else "operation_failed",
        )
        self.operation = operation


class OperationTimeout(LaribaError):
    """``wait()`` gave up before the operation finished; it may still finish later."""

    def __init__(self, operation: Operation, *, timeout: float) -> None:
        super().__init__(
            f"Operation {operation.id} ({operation.type}) is still {operation.status} "
            f"after {timeout:g} seconds.",
            code="operation_timeout",
        )
        self.operation = operation
        self.timeout = timeout


_BY_STATUS: Mapping[int, type[LaribaError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
}


def error_from_response(response: httpx.Response) -> LaribaError:
    """The exception for a failed answer, read from its problem+json body (or, for an
    answer that is not one, from its status alone)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.reason_phrase or f"HTTP {status}")
    code = str(body.get("code") or f"http_{status}")
    request_id = body.get("request_id") or response.headers.get("X-Request-ID")
    errors = tuple(
        FieldError(
            field=str(item.get("field", "")),
            message=str(item.get("message", "")),
            location=str(item.get("location", "")),
        )
        for item in body.get("errors") or ()
        if isinstance(item, dict)
    )
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "errors": errors,
        "request_id": request_id,
    }
    if status == 429:
        return RateLimited(detail, retry_after=_retry_after(response, body), **common)
    if status >= 500:
        return ServerError(detail, **common)
    return _BY_STATUS.get(status, LaribaError)(detail, **common)


def _retry_after(response: httpx.Response, body: Mapping[str, Any]) -> int | None:
    value = body.get("retry_after") or response.headers.get("Retry-After")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
