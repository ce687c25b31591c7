"""PostgreSQL engine and sessions: one transaction per request, owned by the request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, ClassVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lariba.core.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


def sqlalchemy_url(url: str) -> str:
    """Normalise any PostgreSQL URL to the psycopg 3 driver SQLAlchemy uses."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("Lariba Cloud needs PostgreSQL; got " + parsed.get_backend_name())
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def create_engine(settings: Settings, url: str, **overrides: Any) -> AsyncEngine:
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_pool_size,
        "pool_pre_ping": True,
        "pool_timeout": settings.db_connect_timeout_seconds,
        "connect_args": {
            "connect_timeout": settings.db_connect_timeout_seconds,
            "application_name": "lariba",
        },
    }
    options.update(overrides)
    return create_async_engine(sqlalchemy_url(url), **options)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session. Commits when the endpoint succeeds, rolls back otherwise.

    Services ``flush()``; they never commit. A POST with an ``Idempotency-Key`` already
    has its session, opened by the idempotency middleware: that one owns the transaction
    (it commits the change together with the stored response), so it is used as it is.
    """
    claimed: AsyncSession | None = getattr(request.state, "db_session", None)
    if claimed is not None:
        yield claimed
        return
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


# scope="function": the commit runs when the endpoint returns, before the response is
# sent, so a client never acts on a 2xx whose change is not yet committed (and a failed
# commit becomes an error response, not a 2xx).
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
