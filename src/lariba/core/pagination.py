"""Cursor pagination: ``limit`` and an opaque ``cursor`` in, ``items`` and ``next_cursor`` out.

Lists are ordered by (created_at, id), so a page never repeats or skips a row even while
rows are being added.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from lariba.core.errors import LaribaError

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class InvalidCursor(LaribaError):
    status = 422
    code = "invalid_cursor"
    title = "Invalid cursor"

    def __init__(self) -> None:
        super().__init__(
            "cursor: not a cursor returned by this list; start again without it",
            extra={"errors": [{"field": "cursor", "message": "invalid", "location": "query"}]},
        )


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: tuple[datetime, uuid.UUID] | None


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-200).")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


def encode_values(values: list[Any]) -> str:
    """An opaque cursor holding ``values`` (JSON); lists with their own keyset use it."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_values(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode() + b"==="))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor from exc


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, ident = decode_values(cursor)
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidCursor from exc


def encode_cursor(created_at: datetime, ident: uuid.UUID) -> str:
    return encode_values([created_at.isoformat(), str(ident)])


async def page_request(
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=_decode(cursor) if cursor else None)


PageParams = Annotated[PageRequest, Depends(page_request)]


async def fetch_page(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    page: PageRequest,
    created_at: InstrumentedAttribute[datetime],
    ident: InstrumentedAttribute[uuid.UUID],
) -> tuple[Sequence[Any], str | None]:
    """Runs ``stmt`` for one page; returns its rows and the cursor of the next page."""
    if page.after is not None:
        stmt = stmt.where(tuple_(created_at, ident) > tuple_(*page.after))
    stmt = stmt.order_by(created_at, ident).limit(page.limit + 1)
    rows = (await session.execute(stmt)).all()
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    last = rows[-1]
    return rows, encode_cursor(_column(last, created_at), _column(last, ident))


def _column(row: Any, column: InstrumentedAttribute[Any]) -> Any:
    entity = row[0]
    return getattr(entity, column.key)


@dataclass(frozen=True)
class SequencePageRequest:
    """A page of a list ordered newest first by a bigint sequence id (append-only logs)."""

    limit: int
    before: int | None


def _decode_sequence(cursor: str) -> int:
    try:
        (ident,) = decode_values(cursor)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor from exc
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise InvalidCursor
    return ident


def encode_sequence_cursor(ident: int) -> str:
    return encode_values([ident])


async def sequence_page_request(
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SequencePageRequest:
    return SequencePageRequest(limit=limit, before=_decode_sequence(cursor) if cursor else None)


SequencePageParams = Annotated[SequencePageRequest, Depends(sequence_page_request)]


async def fetch_page_newest_first(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    page: SequencePageRequest,
    ident: InstrumentedAttribute[int],
) -> tuple[Sequence[Any], str | None]:
    """Runs ``stmt`` for one page ordered by ``ident`` descending (newest first); returns
    its rows and the cursor of the next (older) page."""
    if page.before is not None:
        stmt = stmt.where(ident < page.before)
    stmt = stmt.order_by(ident.desc()).limit(page.limit + 1)
    rows = (await session.execute(stmt)).all()
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    return rows, encode_sequence_cursor(_column(rows[-1], ident))
