"""A project's audit log: the audit trail's search scoped to the project, and exports of
the trail as JSON lines read in batches."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.pagination import Page, SequencePageRequest, fetch_page_newest_first
from lariba.identity.admin.schemas import AuditEventOut
from lariba.identity.audit import AuditFilter, select_audit_events
from lariba.identity.models import AuditEvent

EXPORT_BATCH = 500


async def list_project_audit(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    page: SequencePageRequest,
    where: AuditFilter,
) -> Page[AuditEventOut]:
    """The project's audit events matching ``where``, newest first."""
    stmt = select_audit_events(replace(where, project_id=project_id))
    rows, next_cursor = await fetch_page_newest_first(session, stmt, page=page, ident=AuditEvent.id)
    return Page(
        items=[AuditEventOut.model_validate(row.AuditEvent) for row in rows],
        next_cursor=next_cursor,
    )


async def export_audit(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    where: AuditFilter,
    batch_size: int = EXPORT_BATCH,
) -> AsyncIterator[bytes]:
    """The audit events matching ``where``, oldest first, one JSON object a line, read
    ``batch_size`` rows at a time (keyset on the id) so an export of any length holds one
    batch in memory. One REPEATABLE READ transaction: the export is a consistent snapshot,
    and a row committed meanwhile with a lower id cannot slip between two batches."""
    async with sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        last_id: int | None = None
        while True:
            stmt = select_audit_events(where).order_by(AuditEvent.id).limit(batch_size)
            if last_id is not None:
                stmt = stmt.where(AuditEvent.id > last_id)
            rows = (await session.scalars(stmt)).all()
            if not rows:
                return
            yield b"".join(
                AuditEventOut.model_validate(row).model_dump_json().encode() + b"\n" for row in rows
            )
            last_id = rows[-1].id
            # Forget the batch: the session would otherwise keep every row it loaded.
            session.expunge_all()
            if len(rows) < batch_size:
                return
