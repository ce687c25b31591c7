"""Tables of managed databases: their credentials, sealed (core.envelope)."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from lariba.core.db import Base, TimestampMixin
from lariba.core.envelope import Sealed


class DatabaseCredential(TimestampMixin, Base):
    """A database's password, envelope-encrypted: never stored, logged or listed in clear."""

    __tablename__ = "database_credentials"

    resource_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    kek_id: Mapped[str] = mapped_column(String(32), index=True)
    wrapped_key: Mapped[str] = mapped_column(Text)
    ciphertext: Mapped[str] = mapped_column(Text)

    @property
    def sealed(self) -> Sealed:
        return Sealed(kek_id=self.kek_id, wrapped_key=self.wrapped_key, ciphertext=self.ciphertext)

    def store(self, sealed: Sealed) -> None:
        self.kek_id = sealed.kek_id
        self.wrapped_key = sealed.wrapped_key
        self.ciphertext = sealed.ciphertext
