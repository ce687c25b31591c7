"""The Python client of the Lariba Cloud API: ``Client`` (blocking) and ``AsyncClient``
(asyncio), typed results and typed errors."""

from lariba.client.asynchronous import AsyncClient
from lariba.client.errors import (
    Conflict,
    ConnectionFailed,
    FieldError,
    Forbidden,
    InvalidInput,
    LaribaError,
    NotFound,
    OperationFailed,
    OperationTimeout,
    RateLimited,
    ServerError,
    Unauthorized,
)
from lariba.client.models import (
    Addresses,
    FirewallRule,
    Instance,
    Operation,
    OperationError,
    Project,
    Tokens,
    User,
)
from lariba.client.sync import Client

__all__ = [
    "Addresses",
    "AsyncClient",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "FieldError",
    "FirewallRule",
    "Forbidden",
    "Instance",
    "InvalidInput",
    "LaribaError",
    "NotFound",
    "Operation",
    "OperationError",
    "OperationFailed",
    "OperationTimeout",
    "Project",
    "RateLimited",
    "ServerError",
    "Tokens",
    "Unauthorized",
    "User",
]
