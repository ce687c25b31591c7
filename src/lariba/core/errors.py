"""Domain errors and their RFC 9457 problem+json rendering.

Every error a client sees has a stable ``code``; nothing leaks a stack trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from lariba.core.logging import redact_path

PROBLEM_JSON = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5
# A request refused because every pooled connection was busy: another try soon will do.
BUSY_RETRY_AFTER_SECONDS = 1

log = structlog.get_logger(__name__)


class LaribaError(Exception):
    """Base of every error that maps to an HTTP problem. Subclasses set status and code."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class NotFound(LaribaError):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthorized(LaribaError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **kw: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="lariba"', **kw.pop("headers", {})}
        super().__init__(detail, code=code, headers=headers, **kw)


class Forbidden(LaribaError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class Conflict(LaribaError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InvalidInput(LaribaError):
    """Input that passed the schema but breaks a rule; names the offending field."""

    status = 422
    code = "validation_failed"
    title = "Invalid input"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(
            f"{field}: {message}",
            code=code,
            extra={"errors": [{"field": field, "message": message, "location": "body"}]},
        )


class PayloadTooLarge(LaribaError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class RateLimited(LaribaError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        retry_after = max(1, retry_after)
        super().__init__(
            detail,
            code=code,
            headers={"Retry-After": str(retry_after)},
            extra={"retry_after": retry_after},
        )


class ServiceUnavailable(LaribaError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:lariba:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": redact_path(request.url.path),
    }
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra or {})
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc else "body"
        field = ".".join(loc[1:]) if len(loc) > 1 else location
        if error.get("type") == "json_invalid":
            field = "body"
        out.append(
            {
                "field": field,
                # Pydantic prefixes the messages of custom validators; users need only ours.
                "message": str(error.get("msg", "invalid")).removeprefix("Value error, "),
                "location": location,
            }
        )
    return out


async def _lariba_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LaribaError)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc.errors())
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return problem_response(
        request,
        status=422,
        code="validation_failed",
        title="Invalid input",
        detail=f"Invalid input in: {fields}",
        extra={"errors": errors},
    )


_HTTP_CODES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


# FastAPI's answer to a body it cannot decode at all (bytes that are not UTF-8, a broken
# form): a 400 with this detail, raised from the decoding error.
_UNPARSABLE_BODY_DETAIL = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if (
        exc.status_code == 400
        and exc.detail == _UNPARSABLE_BODY_DETAIL
        and exc.__cause__ is not None
    ):
        # The same answer as a body that is not JSON: 422 naming the body.
        message = "the body could not be decoded: send UTF-8 JSON"
        return problem_response(
            request,
            status=422,
            code="validation_failed",
            title="Invalid input",
            detail=f"Invalid input in: body ({message})",
            extra={"errors": [{"field": "body", "message": message, "location": "body"}]},
        )
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow"))
    return problem_response(
        request,
        status=exc.status_code,
        code=code,
        title=title,
        detail=str(exc.detail),
        headers=headers,
    )


def _allowed_methods(request: Request, given: str | None) -> str:
    """Every method the path answers to. Starlette's 405 names only those of the first route
    that matched the path, while a path's methods are spread over several routes: the
    OpenAPI schema knows them all."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods.update(method.upper() for method in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) if methods else (given or "")


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database_unavailable", error_type=type(exc).__name__)
    return problem_response(
        request,
        status=503,
        code="database_unavailable",
        title="Service unavailable",
        detail="The database is not reachable right now; retry shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _server_busy(request: Request, exc: Exception) -> JSONResponse:
    # The pool's checkout timed out: every connection this process may open is in use by
    # other requests. PostgreSQL itself is fine; the process has more work than it can
    # take on, and another replica (or this one, a moment later) will answer.
    log.warning("server_busy", error_type=type(exc).__name__)
    return problem_response(
        request,
        status=503,
        code="server_busy",
        title="Service unavailable",
        detail="The server is answering more requests than it has database connections "
        "for; retry shortly.",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", error_type=type(exc).__name__)
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal error",
        detail="Something went wrong on our side. Quote the request id when reporting it.",
    )


# Told of every unhandled error after its 500 is built (a service records it, say).
UnexpectedErrorHook = Callable[[Request, Exception], Awaitable[None]]


def install_error_handlers(
    app: FastAPI, *, on_unexpected: Sequence[UnexpectedErrorHook] = ()
) -> None:
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        response = await _unexpected(request, exc)
        for hook in on_unexpected:
            try:
                await hook(request, exc)
            except Exception as hook_exc:  # the caller still gets their 500
                log.warning("unexpected_error_hook_failed", error_type=type(hook_exc).__name__)
        return response

    app.add_exception_handler(LaribaError, _lariba_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
        ConnectionError,
    ):
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(sa_exc.TimeoutError, _server_busy)
    app.add_exception_handler(Exception, unexpected)
