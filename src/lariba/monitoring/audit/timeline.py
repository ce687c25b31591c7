"""Lists merged from several tables in time order (the activity feed, a resource's log),
paginated in SQL: one UNION ALL of per-table keyset pages, ordered by (time, source, key),
so a page never holds more than ``limit + 1`` rows of each table."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import ColumnElement, String, and_, cast, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from lariba.core.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    InvalidCursor,
    Limit,
    decode_values,
    encode_values,
)


@dataclass(frozen=True)
class TimelineKey:
    """Where a row sits in a merged list: its time, its table's name, and its id as text
    (ordered within a table as the id itself is)."""

    at: datetime
    source: str
    key: str


@dataclass(frozen=True)
class TimelinePageRequest:
    limit: int
    cursor: TimelineKey | None


def _decode(cursor: str) -> TimelineKey:
    try:
        at, source, key = decode_values(cursor)
        when = datetime.fromisoformat(at)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor from exc
    if when.tzinfo is None or not isinstance(source, str) or not isinstance(key, str):
        raise InvalidCursor
    return TimelineKey(at=when, source=source, key=key)


async def timeline_page_request(
    limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> TimelinePageRequest:
    return TimelinePageRequest(limit=limit, cursor=_decode(cursor) if cursor else None)


TimelinePageParams = Annotated[TimelinePageRequest, Depends(timeline_page_request)]


def bigint_key(ident: InstrumentedAttribute[int]) -> ColumnElement[str]:
    """A bigint id as text that sorts like the number (ids are never negative)."""
    return func.lpad(cast(ident, String), 20, "0")


def uuid_key(ident: InstrumentedAttribute[uuid.UUID]) -> ColumnElement[str]:
    """A uuid as text: its hex digits sort like the uuid's bytes."""
    return cast(ident, String)


@dataclass(frozen=True)
class Source:
    """One table of a merged list: its rows (``where``), their time and id, the id as
    sortable text and back."""

    name: str
    where: Sequence[ColumnElement[bool]]
    at: InstrumentedAttribute[datetime]
    ident: InstrumentedAttribute[Any]
    key: ColumnElement[str]
    parse_key: Callable[[str], Any]


def _past_cursor(source: Source, cursor: TimelineKey, *, newest_first: bool) -> Any:
    """The source's rows beyond ``cursor`` in list order, as a predicate on its own time and
    id columns (so its indexes serve it)."""
    beyond = operator.lt if newest_first else operator.gt
    if source.name == cursor.source:
        try:
            ident = source.parse_key(cursor.key)
        except (ValueError, TypeError) as exc:
            raise InvalidCursor from exc
        return or_(
            beyond(source.at, cursor.at),
            and_(source.at == cursor.at, beyond(source.ident, ident)),
        )
    if beyond(source.name, cursor.source):
        # Same time, this source sorts past the cursor's: its rows at that time come next.
        return or_(beyond(source.at, cursor.at), source.at == cursor.at)
    return beyond(source.at, cursor.at)


async def fetch_timeline_page(
    session: AsyncSession,
    sources: Sequence[Source],
    *,
    page: TimelinePageRequest,
    newest_first: bool,
) -> tuple[list[TimelineKey], str | None]:
    """The keys of one page of the merged list, and the cursor of the next page."""
    if page.cursor is not None and page.cursor.source not in {s.name for s in sources}:
        raise InvalidCursor
    branches = []
    for source in sources:
        at = source.at.desc() if newest_first else source.at.asc()
        ident = source.ident.desc() if newest_first else source.ident.asc()
        stmt = select(
            source.at.label("at"), literal(source.name).label("source"), source.key.label("key")
        ).where(*source.where)
        if page.cursor is not None:
            stmt = stmt.where(_past_cursor(source, page.cursor, newest_first=newest_first))
        branch = stmt.order_by(at, ident).limit(page.limit + 1).subquery()
        branches.append(select(branch))
    merged = union_all(*branches).subquery()
    columns = (merged.c.at, merged.c.source, merged.c.key)
    order = [c.desc() if newest_first else c.asc() for c in columns]
    rows = (await session.execute(select(*columns).order_by(*order).limit(page.limit + 1))).all()
    keys = [TimelineKey(at=row.at, source=row.source, key=row.key) for row in rows]
    if len(keys) <= page.limit:
        return keys, None
    keys = keys[: page.limit]
    last = keys[-1]
    return keys, encode_values([last.at.isoformat(), last.source, last.key])
