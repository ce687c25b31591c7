"""JSON logs, one object a line, each carrying the request id of the request that wrote it."""

from __future__ import annotations

import logging
import re
import sys

import structlog

_SECRET_KEYS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "token",
        "refresh_token",
        "access_token",
        "api_key",
        "secret",
        "authorization",
        "otp",
    }
)


_SECRET_PATHS: list[re.Pattern[str]] = []


def register_secret_path(pattern: str) -> None:
    """Declares that URL paths matching ``pattern`` carry a secret (say an invitation
    token) in its group named ``secret``: it is masked wherever Lariba writes the path."""
    compiled = re.compile(pattern)
    if "secret" not in compiled.groupindex:
        raise ValueError("the pattern needs a group named 'secret'")
    if compiled not in _SECRET_PATHS:
        _SECRET_PATHS.append(compiled)


def redact_path(path: str) -> str:
    for pattern in _SECRET_PATHS:
        match = pattern.match(path)
        if match:
            return path[: match.start("secret")] + "[redacted]" + path[match.end("secret") :]
    return path


def _drop_secrets(
    _logger: object, _name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for key in _SECRET_KEYS & event_dict.keys():
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Requests are logged once, by the request middleware, with their id.
    logging.getLogger("uvicorn.access").disabled = True
    # procrastinate logs every job's start and end at INFO: two lines per reconcile pass,
    # which cost the worker more than the pass's own work. Its warnings and errors stay;
    # LARIBA_LOG_LEVEL=DEBUG shows everything.
    if root.level > logging.DEBUG:
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
