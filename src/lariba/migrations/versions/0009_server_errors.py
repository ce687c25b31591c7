"""server errors: unhandled errors with their request id, for platform admins

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_errors",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("route", sa.String(512), nullable=True),
        sa.Column("error_type", sa.String(256), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("traceback", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_errors")),
    )
    op.create_index(
        op.f("ix_server_errors_occurred_at"), "server_errors", ["occurred_at"], unique=False
    )
    op.create_index(
        op.f("ix_server_errors_request_id"), "server_errors", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_server_errors_request_id"), table_name="server_errors")
    op.drop_index(op.f("ix_server_errors_occurred_at"), table_name="server_errors")
    op.drop_table("server_errors")
