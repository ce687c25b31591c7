"""The table of the buckets kind: multipart uploads in flight."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from lariba.core.db import Base


class BucketUpload(Base):
    """A multipart upload begun through the API. Clients name it by Lariba's id, which
    binds the provider's upload id to one bucket and key of one project."""

    __tablename__ = "bucket_uploads"
    __table_args__ = (Index("ix_bucket_uploads_bucket_created", "bucket_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    bucket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)
    provider_upload_id: Mapped[str] = mapped_column(Text)
    # Part number → the size its presigned URL allows: the upload's whole size is checked
    # against the storage quota each time a part URL is issued.
    declared_parts: Mapped[dict[str, int]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
