"""The message and exit code of each kind of failure, for the ones a live server cannot
be made to produce on demand (an operation that fails or outlasts --timeout)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lariba.cli.remote.config import Profile
from lariba.cli.remote.connection import EXIT_API_ERROR, EXIT_OPERATION, Connection
from lariba.client import (
    OperationError,
    OperationFailed,
    OperationTimeout,
    RateLimited,
    ServerError,
)
from lariba.client.models import Operation

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def operation(status: str, error: OperationError | None = None) -> Operation:
    return Operation(
        id="op-1",
        project_id="p-1",
        resource_id="i-1",
        resource_kind="instance",
        type="create",
        status=status,
        progress=None,
        error=error,
        created_at=NOW,
        started_at=NOW,
        finished_at=None,
        updated_at=NOW,
    )


@pytest.fixture
def connection(tmp_path: Path) -> Connection:
    return Connection(
        profile_name="default",
        path=tmp_path / "config.toml",
        profile=Profile(url="http://127.0.0.1:8000", access_token="t"),
    )


def test_failed_operation_exits_5_with_its_error(connection: Connection) -> None:
    failed = OperationFailed(
        operation("failed", OperationError(code="provider_error", message="No capacity."))
    )

    assert connection.explain(failed, not_found=None) == (
        "operation op-1 (create) failed: No capacity. (provider_error)",
        EXIT_OPERATION,
    )


def test_timed_out_wait_exits_5_and_says_how_to_go_on(connection: Connection) -> None:
    timeout = OperationTimeout(operation("running"), timeout=5)

    message, code = connection.explain(timeout, not_found=None)

    assert code == EXIT_OPERATION
    assert message == (
        "Operation op-1 (create) is still running after 5 seconds. It goes on in the "
        "background: follow it with `lariba operations wait op-1`"
    )


def test_rate_limit_and_server_error_say_what_to_do(connection: Connection) -> None:
    limited = RateLimited("Too many requests.", retry_after=7, code="rate_limited")
    failed = ServerError("Internal error.", code="internal", request_id="req-9")

    assert connection.explain(limited, not_found=None) == (
        "Too many requests. (rate_limited): try again in 7 seconds",
        EXIT_API_ERROR,
    )
    assert connection.explain(failed, not_found=None)[0].endswith(
        "report request id req-9 to your Lariba administrator"
    )
