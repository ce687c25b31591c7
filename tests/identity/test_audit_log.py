"""The audit trail is append-only, whatever the application tries."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.models import AuditEvent
from tests.fixtures.identity import TestUser


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEvent).values(outcome="success"),
        delete(AuditEvent),
        text("TRUNCATE audit_events"),
    ],
    ids=["update", "delete", "truncate"],
)
async def test_audit_rows_cannot_be_changed_or_removed(
    client: httpx.AsyncClient, alice: TestUser, db: AsyncSession, statement: object
) -> None:
    before = await db.scalar(select(func.count()).select_from(AuditEvent))
    assert before
    with pytest.raises(DBAPIError, match="append-only"):
        await db.execute(statement)  # type: ignore[call-overload]
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(AuditEvent)) == before
