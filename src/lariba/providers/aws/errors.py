"""How a boto3 failure is classified: retry it, give up on it, or treat the resource as gone."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    HTTPClientError,
)

from lariba.providers.base import (
    PermanentProviderError,
    ProviderError,
    ProviderNotFound,
    TransientProviderError,
)

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "SlowDown",
    }
)
# Server-side failures EC2 reports by code, whatever the HTTP status says. Capacity
# shortages are the cloud's, not the request's: the same call can succeed later.
SERVER_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
    }
)
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


def classify(exc: BotoCoreError | ClientError) -> ProviderError:
    """The contract's error for a boto3 failure, keeping AWS's code and message."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in THROTTLING_CODES or code in SERVER_CODES or status >= 500:
            return TransientProviderError(message, code=code)
        if code in NOT_FOUND_CODES:
            return ProviderNotFound(message, code=code)
        return PermanentProviderError(message, code=code)
    # Connection refused, DNS failure, connect/read timeouts, a dropped connection.
    if isinstance(exc, EndpointConnectionError | ConnectionError | HTTPClientError):
        return TransientProviderError(str(exc), code=type(exc).__name__)
    # Missing credentials, invalid parameters: nothing a retry would fix.
    return PermanentProviderError(str(exc), code=type(exc).__name__)
